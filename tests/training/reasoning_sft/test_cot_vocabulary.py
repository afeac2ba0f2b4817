"""CoT words in the tiny tokenizer (training/reasoning_sft/words.py, corpus.py; builder `extra_words`)."""

from __future__ import annotations

import hashlib
import json

import pytest

from training.identifiers.atomic import AtomicScheme
from training.reasoning_sft.corpus import corpus_words
from training.reasoning_sft.words import collect_cot_words, render_cot_pieces, split_cot_words
from training.tokenization.builder import collect_vocabulary

# sha256 of json.dumps(vocabulary) for the tiny fixture with atomic ids and every user profile, computed
# before `extra_words` existed: existing tokenizers and bundles must stay bit-identical.
TINY_ATOMIC_VOCAB_SHA256 = "c5f89b05cb98be3098ecff84a7fb82a4585d52edb4b4a1f7b17f9bb8298841c6"


@pytest.mark.timeout(10)
def test_split_cot_words_hand_case():
    text = "Step 1, behavioural evidence: Film-Noir (57%). Children's <s0_1> <i_AB>;"
    assert split_cot_words(text) == ["step", "1", ",", "behavioural", "evidence", ":", "film", "-", "noir", "(",
                                     "57", "%", ")", ".", "children", "'", "s", "<s0_1>", "<i_AB>", ";"]


@pytest.mark.timeout(10)
def test_collect_cot_words_orders_by_count_then_name_and_skips_identifier_tokens():
    assert collect_cot_words([["b", "a", "<s0_1>"], ["a", "c", "b", "a"]]) == ["a", "b", "c"]
    assert collect_cot_words([["<s0_1>", "x"]], skip_identifier_tokens=False) == ["<s0_1>", "x"]


@pytest.mark.timeout(10)
def test_default_vocabulary_is_unchanged(tiny_dataset, tiny_catalog):
    scheme = AtomicScheme(tiny_catalog.item_ids)
    default = collect_vocabulary(tiny_catalog, tiny_dataset.users.values(), scheme.new_tokens())
    assert hashlib.sha256(json.dumps(default).encode()).hexdigest() == TINY_ATOMIC_VOCAB_SHA256
    assert collect_vocabulary(tiny_catalog, tiny_dataset.users.values(), scheme.new_tokens(), extra_words=()) == default


@pytest.mark.timeout(10)
def test_extra_words_are_appended_in_order_without_duplicates(tiny_catalog):
    scheme = AtomicScheme(tiny_catalog.item_ids)
    default = collect_vocabulary(tiny_catalog, [], scheme.new_tokens())
    extended = collect_vocabulary(tiny_catalog, [], scheme.new_tokens(), extra_words=["zeta", "film", "alpha", "zeta"])
    assert extended[:len(default)] == default  # every existing id is kept
    assert extended[len(default):] == ["zeta", "alpha"]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kit_name", ["tiny_kit", "varied_kit"])
def test_every_piece_of_the_teacher_cots_is_in_the_vocabulary(kit_name, request):
    kit = request.getfixturevalue(kit_name)
    vocab = kit.tokenizer.get_vocab()
    assert kit.records and set(corpus_words(kit.records)) <= set(vocab)
    for record in kit.records:
        ids = kit.encode([" ".join(record.cot_pieces)])  # the tokenizer's own whitespace split
        assert kit.tokenizer.unk_token_id not in ids
        assert kit.tokenizer.convert_ids_to_tokens(ids) == list(record.cot_pieces)


@pytest.mark.timeout(10)
def test_denoised_history_is_written_as_identifier_tokens(varied_kit):
    sample = varied_kit.samples[0]
    cot = varied_kit.teacher.write(sample, target=sample.target)
    pieces = render_cot_pieces(cot, varied_kit.scheme.item_tokens)
    start = max(i for i in range(len(pieces)) if pieces[i:i + 3] == ["denoised", "history", ":"]) + 3
    tail = pieces[start:]
    assert tail == [t for item in cot.denoised_history for t in varied_kit.scheme.item_tokens(item)]
