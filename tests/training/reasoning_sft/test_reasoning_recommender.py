"""Two-stage reasoning decoding on an untrained policy (training/reasoning_sft/recommender.py).

Random weights never write `</think>`, so every CoT is forced closed at `max_think_tokens`; the trie beam
after `<answer>` must still return k distinct real items.
"""

from __future__ import annotations

import pytest

from training.prompts import ANSWER, THINK, THINK_END
from training.reasoning_sft.recommender import ReasoningDecodeSettings, ReasoningRecommender

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def recommender(kit, policy_for, **settings):
    return ReasoningRecommender(policy_for(kit), kit.tokenizer, kit.scheme, kit.catalog,
                                ReasoningDecodeSettings(**{"max_think_tokens": 6, **settings}))


@pytest.mark.timeout(30)
def test_greedy_rank_returns_k_distinct_real_items_and_honours_exclusions(tiny_kit, sft_split, policy_for):
    rec = recommender(tiny_kit, policy_for)
    samples = sft_split.valid[:4]
    exclude = [set(s.history) for s in samples]
    ranked = rec.rank(samples, 5, exclude)
    for items, excluded in zip(ranked, exclude, strict=True):
        assert len(items) == len(set(items)) == 5
        assert all(i in tiny_kit.catalog for i in items) and not excluded.intersection(items)
    outputs = rec.reason(samples, 5, exclude)
    assert all(o.closed == (False,) and len(o.answers) == 1 and o.answers[0] == o.ranked[0] for o in outputs)
    assert all(len(o.thoughts[0].split()) == 6 for o in outputs)  # forced </think> after 6 tokens
    assert [list(o.ranked) for o in outputs] == ranked  # greedy: deterministic


@pytest.mark.timeout(30)
def test_stage_two_is_the_trie_beam_after_the_cot_and_answer_tag(tiny_kit, sft_split, policy_for):
    rec = recommender(tiny_kit, policy_for)
    sample = sft_split.valid[0]
    output = rec.reason([sample], 4)[0]
    vocab = tiny_kit.tokenizer.get_vocab()
    cot = [vocab[t] for t in output.thoughts[0].split()]
    prompt = rec.prompt_ids(sample)
    assert prompt[-1] == vocab[THINK]
    beam = rec.beam.top_items([prompt + cot + [vocab[THINK_END], vocab[ANSWER]]], 4)[0]
    assert list(output.ranked) == [item for item, _ in beam]


@pytest.mark.timeout(30)
def test_pass_at_k_sampling_merges_k_cots(tiny_kit, sft_split, policy_for):
    rec = recommender(tiny_kit, policy_for, n_cots=3, temperature=0.7, top_p=0.9, seed=5)
    assert ReasoningDecodeSettings.pass_at(3, max_think_tokens=6, seed=5) == rec.settings
    samples = sft_split.valid[:3]
    outputs = rec.reason(samples, 4)
    for output in outputs:
        assert len(output.thoughts) == len(output.answers) == 3
        assert len(output.ranked) == len(set(output.ranked)) == 4
        union = list(dict.fromkeys(output.answers))
        assert set(output.ranked[:len(union)]) == set(union)  # the answers head the ranking
    assert rec.reason(samples, 4) == outputs  # seeded


@pytest.mark.timeout(10)
def test_settings_are_checked(tiny_kit, policy_for):
    with pytest.raises(ValueError, match="n_cots > 1 needs temperature"):
        ReasoningDecodeSettings(n_cots=2)
    with pytest.raises(ValueError):
        ReasoningDecodeSettings(top_p=0.0)
    with pytest.raises(ValueError, match="no room for a prompt"):
        recommender(tiny_kit, policy_for, max_think_tokens=500, max_total_tokens=500)

