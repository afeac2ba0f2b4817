"""The vLLM rollout backend against our batched backend and teacher forcing, on a real in-process vLLM engine.

One tiny Qwen3 over 2-level SIDs (+ disambiguation slot, so ids are 3 tokens): every sample
must be a real item, sampled log-probs must be the policy's, top-k must equal our exact beam,
and synced weights must give the same log-probs as a fresh engine loaded from those weights.
"""

from collections import Counter

import pytest
import torch

from tests.conftest import make_tiny_dataset, make_tiny_policy
from training.catalog import Catalog
from training.models.policy_recommender import build_item_trie
from training.rollout.backend import BatchedTrieEngine
from training.rollout.trie_mask import TrieMask

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(vLLM engine, our engine, trie, item ids, prompts, model, tokenizer, folder) built once."""
    from training.rollout.vllm_backend import VLLMTrieEngine

    catalog = Catalog(make_tiny_dataset().items.values())
    model, tokenizer, scheme = make_tiny_policy(catalog, hidden=64, heads=2)
    model.eval()
    folder = tmp_path_factory.mktemp("vllm") / "policy"
    model.save_pretrained(folder)
    trie, item_ids = build_item_trie(scheme, tokenizer)
    prompts = [tokenizer.convert_tokens_to_ids(["<bos>", "<hist>", *[t for i in h for t in scheme.item_tokens(i)]])
               for h in (["1", "2", "3"], ["7"], ["4", "4", "9", "10", "11"])]
    engine = VLLMTrieEngine(folder, trie, scheme.depth, tokenizer.eos_token_id, beam_width=20)
    ours = BatchedTrieEngine(model, trie, scheme.depth, tokenizer.pad_token_id, beam_width=20)
    return engine, ours, trie, item_ids, prompts, model, folder


def test_trie_mask_rows_allow_exactly_the_trie_children(setup):
    _, _, trie, item_ids, *_ = setup
    mask = TrieMask.build(trie, vocab_size=200, end_id=2)
    for ids in item_ids.values():
        for j in range(len(ids)):
            row = mask.allowed[mask.row(tuple(ids[:j]))]
            assert row.nonzero().flatten().tolist() == trie.allowed_next(ids[:j])
        assert mask.allowed[mask.row(tuple(ids))].nonzero().flatten().tolist() == [2]  # a leaf: only the end


def test_a_thousand_samples_are_all_real_items_on_both_backends(setup):
    engine, ours, trie, item_ids, prompts, *_ = setup
    for backend in (engine, ours):
        groups = backend.sample(prompts, n=1000 // len(prompts) + 1, generator=torch.Generator().manual_seed(0))
        completions = [c for g in groups for c in g]
        assert len(completions) >= 1000
        assert all(c.item in trie and list(c.token_ids) == item_ids[c.item] for c in completions)
        assert len(Counter(c.item for c in completions)) > 6  # it samples, not argmax


def test_sampled_logprobs_are_the_policy_logprobs(setup, exact_logprob):
    engine, _, trie, _, prompts, model, _ = setup
    groups = engine.sample(prompts, n=8, generator=torch.Generator().manual_seed(1))
    for prompt, group in zip(prompts, groups, strict=True):
        for c in group:
            assert c.logprob == pytest.approx(exact_logprob(model, prompt, list(c.token_ids)), abs=1e-4)
            assert list(c.n_children) == [len(trie.allowed_next(c.token_ids[:j])) for j in range(len(c.token_ids))]


def test_top_items_equal_our_exact_beam_with_exclusion(setup):
    engine, ours, _, _, prompts, *_ = setup
    exclude = [{"1", "2", "3"}, set(), {"4", "9"}]
    got, want = engine.top_items(prompts, 8, exclude), ours.top_items(prompts, 8, exclude)
    for g, w, ex in zip(got, want, exclude, strict=True):
        assert [item for item, _ in g] == [item for item, _ in w]
        assert [lp for _, lp in g] == pytest.approx([lp for _, lp in w], abs=1e-4)
        assert not ex & {item for item, _ in g}


def test_synced_weights_match_a_fresh_engine_on_the_same_weights(setup, tmp_path):
    from training.rollout.vllm_backend import VLLMTrieEngine

    engine, _, trie, _, prompts, model, _ = setup
    before = engine.top_items(prompts, 5)
    changed = {k: v + 0.05 * torch.randn_like(v, generator=torch.Generator().manual_seed(3))
               for k, v in model.state_dict().items()}
    # named_parameters() style: the tied LM head has no key of its own (the stale-head catch, DESIGN §8)
    engine.sync_weights({k: v for k, v in changed.items() if k != "lm_head.weight"})
    synced = engine.top_items(prompts, 5)
    assert synced != before
    model.load_state_dict(changed)
    model.save_pretrained(tmp_path / "changed")
    fresh = VLLMTrieEngine(tmp_path / "changed", trie, engine.depth, engine.end_id, beam_width=20)
    expected = fresh.top_items(prompts, 5)
    for s, e in zip(synced, expected, strict=True):
        assert [item for item, _ in s] == [item for item, _ in e]
        assert [lp for _, lp in s] == pytest.approx([lp for _, lp in e], abs=1e-5)
