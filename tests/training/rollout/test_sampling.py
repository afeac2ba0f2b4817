"""Trie-constrained sampling: every sample is a real item, log-probs are the policy's, frequencies follow it."""

import math
from collections import Counter

import pytest
import torch

from training.identifiers.trie import ItemTrie
from training.models.policy_recommender import build_item_trie
from training.rollout.sampling import TrieSampler, draw_from_candidates


@pytest.fixture
def sampler(tiny_policy):
    model, tokenizer, scheme = tiny_policy
    trie, item_ids = build_item_trie(scheme, tokenizer)
    return TrieSampler(model.eval(), trie, scheme.depth, tokenizer.pad_token_id), item_ids


def test_every_sample_is_a_catalog_item_with_exact_logprobs(sampler, history_prompts, exact_logprob):
    s, item_ids = sampler
    groups = s.sample(history_prompts, n=50, generator=torch.Generator().manual_seed(0))
    assert [len(g) for g in groups] == [50, 50, 50]
    for prompt, group in zip(history_prompts, groups, strict=True):
        for c in group[:10]:
            assert list(c.token_ids) == item_ids[c.item]
            assert c.logprob == pytest.approx(exact_logprob(s.model, prompt, list(c.token_ids)), abs=1e-4)
    assert all(c.item in item_ids for g in groups for c in g)


def test_child_counts_follow_the_trie(sampler, history_prompts):
    s, _ = sampler
    for c in s.sample(history_prompts[:1], n=20, generator=torch.Generator().manual_seed(1))[0]:
        expected = [len(s.trie.allowed_next(c.token_ids[:j])) for j in range(len(c.token_ids))]
        assert list(c.n_children) == expected


def test_frequencies_match_the_constrained_policy_at_temperature_one(sampler, history_prompts, exact_logprob):
    s, item_ids = sampler
    prompt = history_prompts[1]
    n = 4000
    counts = Counter(c.item for c in s.sample([prompt], n=n, generator=torch.Generator().manual_seed(2))[0])
    # sampling renormalises over trie children level by level: P(item) = prod_l p(t_l | prefix, allowed)
    probs = {item: _constrained_prob(s, prompt, ids) for item, ids in item_ids.items()}
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
    for item, p in probs.items():
        assert abs(counts[item] / n - p) < 4 * math.sqrt(p * (1 - p) / n) + 1e-3


def _constrained_prob(s, prompt, ids):
    prob = 1.0
    for j, token in enumerate(ids):
        with torch.no_grad():
            logits = s.model(input_ids=torch.tensor([prompt + ids[:j]])).logits[0, -1]
        allowed = s.trie.allowed_next(ids[:j])
        prob *= torch.softmax(logits[allowed], 0)[allowed.index(token)].item()
    return prob


def test_low_temperature_and_top_k_concentrate_samples():
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    candidates = torch.tensor([[0, 1, 2, -1]])  # token 3 is not a child: never drawn
    gen = torch.Generator().manual_seed(0)
    picks = draw_from_candidates(logits, candidates, temperature=1.0, top_k=0, n=2000, generator=gen)
    assert set(picks.flatten().tolist()) == {0, 1, 2}
    cold = draw_from_candidates(logits, candidates, temperature=0.05, top_k=0, n=200, generator=gen)
    assert set(cold.flatten().tolist()) == {2}
    top2 = draw_from_candidates(logits, candidates, temperature=1.0, top_k=2, n=500, generator=gen)
    assert set(top2.flatten().tolist()) == {1, 2}


def test_variable_length_items_are_sampled_whole():
    trie = ItemTrie.build({"a": [3, 2], "b": [4, 5, 2]})  # 2 = end token appended by build_item_trie

    class Uniform(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, input_ids, attention_mask=None, cache=None, use_cache=True, logits_to_keep=None):
            logits = torch.zeros(input_ids.shape[0], input_ids.shape[1], 8)
            return type("Out", (), {"logits": logits, "cache": cache or _NoCache()})()

    s = TrieSampler(Uniform(), trie, depth=3, pad_id=0)
    items = Counter(c.item for c in s.sample([[1]], n=400, generator=torch.Generator().manual_seed(0))[0])
    assert set(items) == {"a", "b"} and abs(items["a"] - 200) < 60


class _NoCache:
    def reorder_cache(self, index):
        return None


def test_temperature_must_be_positive(sampler, history_prompts):
    with pytest.raises(ValueError, match="temperature"):
        sampler[0].sample(history_prompts, n=2, temperature=0)


def test_teacher_forced_logprobs_match_the_sampler(sampler, history_prompts):
    from training.rollout.scoring import completion_logprobs

    s, _ = sampler
    groups = s.sample(history_prompts, n=4, generator=torch.Generator().manual_seed(3))
    prompts = [p for p, g in zip(history_prompts, groups, strict=True) for _ in g]
    completions = [c for g in groups for c in g]
    logprobs, mask = completion_logprobs(s.model, prompts, [c.token_ids for c in completions], 0)
    expected = torch.tensor([list(c.logprobs) for c in completions])
    assert mask.sum().item() == expected.numel()
    assert torch.allclose(logprobs, expected, atol=1e-4)


def test_no_invalid_item_in_1000_samples_at_high_temperature(sampler, history_prompts):
    s, item_ids = sampler
    groups = s.sample(history_prompts, n=1000, temperature=3.0, generator=torch.Generator().manual_seed(4))
    assert all(c.item in item_ids and list(c.token_ids) == item_ids[c.item] for g in groups for c in g)


@pytest.mark.timeout(60)
def test_hf_generate_sampling_gives_real_items_with_policy_logprobs(tiny_policy, history_prompts, exact_logprob):
    from training.rollout.hf_sampling import hf_generate_sample

    model, tokenizer, scheme = tiny_policy
    trie, item_ids = build_item_trie(scheme, tokenizer)
    torch.manual_seed(0)
    groups = hf_generate_sample(model.eval(), trie, history_prompts, 20, scheme.depth, tokenizer.pad_token_id, 2)
    assert [len(g) for g in groups] == [20, 20, 20]
    assert len({c.item for g in groups for c in g}) > 3
    for prompt, group in zip(history_prompts, groups, strict=True):
        for c in group[:5]:
            assert list(c.token_ids) == item_ids[c.item]
            assert c.logprob == pytest.approx(exact_logprob(model, prompt, list(c.token_ids)), abs=1e-4)
