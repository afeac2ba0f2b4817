"""Reverse-reasoning SFT records and examples (training/reasoning_sft/corpus.py, examples.py)."""

from __future__ import annotations

import pytest

from training.prompts import ANSWER, ANSWER_END, BOS, HIST, THINK, THINK_END
from training.reasoning_sft.corpus import write_reasoning_corpus
from training.reasoning_sft.examples import build_reasoning_example, build_reasoning_examples
from training.reasoning_sft.words import render_cot_pieces


def tokens_of(kit, ids):
    return kit.tokenizer.convert_ids_to_tokens(ids)


@pytest.mark.timeout(10)
def test_records_are_reverse_reasoning_towards_the_target(varied_kit):
    for record in varied_kit.records:
        sample = record.sample
        reverse = varied_kit.teacher.write(sample, target=sample.target)
        assert reverse.recommended_item == sample.target
        assert record.cot_pieces == tuple(render_cot_pieces(reverse, varied_kit.scheme.item_tokens))
    # the history-only CoT (what the Rechead reads) may recommend another item: it is never the SFT text
    forward = [varied_kit.teacher.write(r.sample) for r in varied_kit.records]
    differing = [(f, r) for f, r in zip(forward, varied_kit.records, strict=True)
                 if f.recommended_item != r.sample.target]
    assert differing
    for cot, record in differing:
        assert tuple(render_cot_pieces(cot, varied_kit.scheme.item_tokens)) != record.cot_pieces


@pytest.mark.timeout(10)
def test_corpus_subset_and_known_filter(varied_kit):
    teacher, tokens = varied_kit.teacher, varied_kit.scheme.item_tokens
    assert [r.sample for r in write_reasoning_corpus(teacher, varied_kit.samples, tokens, known={"1", "5"})] == [
        varied_kit.samples[0], varied_kit.samples[1]]
    subset = write_reasoning_corpus(teacher, varied_kit.samples, tokens, max_samples=2, seed=3)
    assert len(subset) == 2 and subset == write_reasoning_corpus(teacher, varied_kit.samples, tokens, max_samples=2,
                                                                 seed=3)


@pytest.mark.timeout(10)
def test_loss_is_on_the_completion_only(varied_kit):
    examples = build_reasoning_examples(varied_kit.records, varied_kit.encode, varied_kit.scheme.item_tokens)
    assert len(examples) == len(varied_kit.records)
    for record, example in zip(varied_kit.records, examples, strict=True):
        tokens = tokens_of(varied_kit, example.input_ids)
        start = example.loss_mask.index(True)
        assert not any(example.loss_mask[:start]) and all(example.loss_mask[start:])
        prompt, completion = tokens[:start], tokens[start:]
        history = [t for item in record.sample.history for t in varied_kit.scheme.item_tokens(item)]
        assert prompt == [BOS, HIST, *history, THINK]  # the direct layout + the <think> prefill
        answer = list(varied_kit.scheme.item_tokens(record.sample.target))
        assert completion == [*record.cot_pieces, THINK_END, ANSWER, *answer, ANSWER_END]
        assert varied_kit.tokenizer.unk_token_id not in example.input_ids


@pytest.mark.timeout(10)
def test_think_in_loss_moves_the_think_tag_into_the_completion(varied_kit):
    example = build_reasoning_examples(varied_kit.records[:1], varied_kit.encode, varied_kit.scheme.item_tokens,
                                       think_in_loss=True)[0]
    tokens = tokens_of(varied_kit, example.input_ids)
    assert tokens[example.loss_mask.index(True)] == THINK and tokens[example.loss_mask.index(True) - 1] != THINK


@pytest.mark.timeout(10)
def test_long_prompts_lose_their_front_and_oversized_completions_are_dropped():
    example = build_reasoning_example([1, 2, 3, 4, 5, 6], [7, 8, 9], max_tokens=7)
    assert example.input_ids == [1, 4, 5, 6, 7, 8, 9]  # <bos> kept, then the last prompt tokens
    assert example.loss_mask == [False] * 4 + [True] * 3
    assert build_reasoning_example([1, 2, 3], [7, 8, 9], max_tokens=4) is None
