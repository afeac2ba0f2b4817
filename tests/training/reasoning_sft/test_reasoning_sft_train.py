"""Hybrid reasoning SFT with GREAM's curriculum (training/reasoning_sft/train.py), on the tiny fixture."""

from __future__ import annotations

import pytest
import torch

from training.reasoning_sft.examples import build_reasoning_examples
from training.reasoning_sft.recommender import ReasoningDecodeSettings, ReasoningRecommender
from training.reasoning_sft.train import ReasoningSFTSettings, shuffled_batches, train_reasoning_sft
from training.trainers.sft_data import build_alignment_examples

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def examples_of(kit, n_records=None):
    reason = build_reasoning_examples(kit.records[:n_records], kit.encode, kit.scheme.item_tokens, kit.item_ids)
    align = build_alignment_examples(kit.catalog, kit.encode, kit.scheme.item_tokens)
    return align, reason


@pytest.mark.timeout(10)
def test_shuffled_batches_cover_every_example_once():
    import random

    batches = shuffled_batches(list(range(10)), 4, random.Random(0))
    assert [len(b) for b in batches] == [4, 4, 2] and sorted(x for b in batches for x in b) == list(range(10))


@pytest.mark.timeout(30)
def test_every_batch_is_trained_once_per_epoch_and_the_best_epoch_is_kept(tiny_kit, policy_for):
    model = policy_for(tiny_kit)
    align, reason = examples_of(tiny_kit, 6)
    snapshots = []

    def validate(epoch):
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return [0.2, 0.9, 0.1][epoch - 1]

    settings = ReasoningSFTSettings(epochs=3, batch_size=4, warmup_steps=0)
    summary = train_reasoning_sft(model, align, reason, tiny_kit.tokenizer.pad_token_id, settings,
                                  validate=validate)
    assert [(e["align_batches"], e["reason_batches"]) for e in summary["log"]] == [(3, 2)] * 3
    assert summary["steps"] == 15 and summary["best_epoch"] == 2 and summary["best_score"] == 0.9
    assert all(torch.equal(v, snapshots[1][k]) for k, v in model.state_dict().items())


@pytest.mark.timeout(180)  # ~20 s on an idle 2-core machine; a loaded one needs far more
def test_a_short_sft_teaches_the_policy_to_close_its_thought_and_answer(tiny_kit, policy_for):
    """60 reasoning steps on 8 records: greedy CoTs follow the five-stage template and end in `</think>`
    written by the policy itself; the answer is a real item (it always is: the trie)."""
    model = policy_for(tiny_kit, hidden=64)
    align, reason = examples_of(tiny_kit, 8)
    settings = ReasoningSFTSettings(epochs=60, batch_size=8, lr=3e-3, warmup_steps=5)
    summary = train_reasoning_sft(model, align, reason, tiny_kit.tokenizer.pad_token_id, settings)
    first, last = summary["log"][0], summary["log"][-1]
    assert last["reason_loss"] < first["reason_loss"] / 4
    rec = ReasoningRecommender(model, tiny_kit.tokenizer, tiny_kit.scheme, tiny_kit.catalog,
                               ReasoningDecodeSettings(max_think_tokens=300))
    samples = [r.sample for r in tiny_kit.records[:8]]
    outputs = rec.reason(samples, 3)
    closed = sum(o.closed[0] for o in outputs)
    assert closed >= 6, [o.thoughts[0][-80:] for o in outputs]
    assert all(o.thoughts[0].startswith("step 1 , behavioural evidence :") for o in outputs)
    assert all(o.answers[0] in tiny_kit.catalog and len(set(o.ranked)) == 3 for o in outputs)
