"""Seen-item exclusion inside the trie beam: masked during the search, so k items still come back."""

import random

import pytest
import torch

from training.identifiers.trie import ItemTrie
from training.models.policy_recommender import build_item_trie
from training.rollout.beam import STAY, TrieBeamSearch, expand_candidates
from training.rollout.generator import HFTrieBeamGenerator

BACKENDS = (TrieBeamSearch, HFTrieBeamGenerator)


@pytest.fixture
def sids(tiny_policy):
    """(model, pad_id, depth, trie, item -> ids) of the tiny policy's 12 items (3 tokens each)."""
    model, tokenizer, scheme = tiny_policy
    trie, item_ids = build_item_trie(scheme, tokenizer)
    return model, tokenizer.pad_token_id, scheme.depth, trie, item_ids


def _items(results):
    return [[item for item, _ in pairs] for pairs in results]


def test_expand_candidates_drops_dead_children_and_dead_stay():
    eos = 2
    trie = ItemTrie.build({"a": [5, eos], "b": [6, 7, eos], "c": [6, 8, eos]})
    prefixes = [(6,), (5, eos), (6,), (5, eos)]
    dead_b, dead_a = trie.dead_prefixes({"b"}), trie.dead_prefixes({"a"})
    got = expand_candidates(trie, prefixes, {}, [dead_b, dead_a, frozenset(), frozenset()])
    # row 0: 7 leads only to b; row 1: a is finished, its STAY is dead too; rows 2-3 untouched
    assert got.tolist() == [[8, -1], [-1, -1], [7, 8], [STAY, -1]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_all_but_k_excluded_returns_exactly_those_k(sids, history_prompts, backend):
    model, pad_id, depth, trie, item_ids = sids
    keep = [{"3", "10", "13-not-an-item"}, {"1", "2", "4"}, {"12", "5", "11"}]
    exclude = [set(item_ids) - k for k in keep]
    gen = backend(model, trie, depth, pad_id, beam_width=1)
    got = _items(gen.top_items(history_prompts, 3, exclude))
    assert [set(g) for g in got] == [k & set(item_ids) for k in keep]
    assert [len(g) for g in got] == [2, 3, 3]


@pytest.mark.parametrize("backend", BACKENDS)
def test_exactly_k_whenever_enough_unseen_items(sids, history_prompts, backend):
    model, pad_id, depth, trie, item_ids = sids
    rng, catalog = random.Random(0), sorted(item_ids)
    gen = backend(model, trie, depth, pad_id, beam_width=2)
    for sizes in [(0, 9, 12), (11, 10, 9), (5, 8, 7)]:
        exclude = [set(rng.sample(catalog, n)) for n in sizes]
        got = _items(gen.top_items(history_prompts, 3, exclude))
        for items, banned, n in zip(got, exclude, sizes, strict=True):
            assert len(items) == min(3, len(catalog) - n) == len(set(items))
            assert not set(items) & banned


@pytest.mark.parametrize("backend", BACKENDS)
def test_dead_first_level_prefixes_are_masked_not_just_leaves(sids, history_prompts, backend):
    """Exclude everything under the two likeliest first tokens: a beam of width 2 that only masked
    whole items would spend both beams there and return nothing."""
    model, pad_id, depth, trie, item_ids = sids
    prompt = history_prompts[0]
    with torch.no_grad():
        first = torch.log_softmax(model(input_ids=torch.tensor([prompt])).logits[0, -1], dim=-1)
    roots = sorted(trie.allowed_next(()), key=lambda t: -first[t].item())
    banned = {item for item, ids in item_ids.items() if ids[0] in roots[:2]}
    left = set(item_ids) - banned
    got = _items(backend(model, trie, depth, pad_id, beam_width=1).top_items([prompt], 2, [banned]))[0]
    assert len(got) == min(2, len(left)) and set(got) <= left


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_exclusion_gives_identical_results(sids, history_prompts, backend):
    model, pad_id, depth, trie, _ = sids
    gen = backend(model, trie, depth, pad_id, beam_width=4)
    plain = gen.top_items(history_prompts, 4)
    assert gen.top_items(history_prompts, 4, [set(), set(), set()]) == plain
    assert gen.top_items(history_prompts, 4, [{"not-an-item"}] * 3) == plain


@pytest.mark.parametrize("backend", BACKENDS)
def test_full_width_with_exclusion_equals_brute_force(sids, history_prompts, exact_logprob, backend):
    model, pad_id, depth, trie, item_ids = sids
    rng = random.Random(1)
    exclude = [set(rng.sample(sorted(item_ids), 6)) for _ in history_prompts]
    gen = backend(model, trie, depth, pad_id, beam_width=len(item_ids))
    results = gen.top_items(history_prompts, 5, exclude)
    for prompt, banned, pairs in zip(history_prompts, exclude, results, strict=True):
        exact = {i: exact_logprob(model, prompt, ids) for i, ids in item_ids.items() if i not in banned}
        best = sorted(exact, key=lambda i: -exact[i])[:5]
        assert [i for i, _ in pairs] == best
        assert [s for _, s in pairs] == pytest.approx([exact[i] for i in best], abs=1e-4)


def test_backends_agree_under_exclusion(sids, history_prompts):
    model, pad_id, depth, trie, item_ids = sids
    rng = random.Random(2)
    exclude = [set(rng.sample(sorted(item_ids), n)) for n in (3, 6, 8)]
    ours = TrieBeamSearch(model, trie, depth, pad_id, beam_width=3).top_items(history_prompts, 3, exclude)
    hf = HFTrieBeamGenerator(model, trie, depth, pad_id, beam_width=3).top_items(history_prompts, 3, exclude)
    assert _items(ours) == _items(hf)
    for a, b in zip(ours, hf, strict=True):
        assert [s for _, s in a] == pytest.approx([s for _, s in b], abs=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_variable_length_titles_with_exclusion_match_brute_force(tiny_policy, exact_logprob, backend):
    """Titles end with EOS and finish at different depths; excluded ones can't survive by staying put."""
    model, tokenizer, _ = tiny_policy
    eos = tokenizer.eos_token_id
    paths = {"a": [5, eos], "b": [6, 7, eos], "c": [6, 8, 9, eos], "d": [10, eos], "e": [6, 8, eos]}
    gen = backend(model, ItemTrie.build(paths), depth=4, pad_id=tokenizer.pad_token_id, beam_width=len(paths))
    prompt = tokenizer.convert_tokens_to_ids(["<bos>", "<hist>"])
    exact = {item: exact_logprob(model, prompt, ids) for item, ids in paths.items()}
    for banned in (set(), {"a", "e"}, {"b", "d"}, {"a", "b", "c", "d"}):
        pairs = gen.top_items([prompt], 5, [banned])[0]
        best = sorted(set(exact) - banned, key=lambda i: -exact[i])
        assert [i for i, _ in pairs] == best
        assert [s for _, s in pairs] == pytest.approx([exact[i] for i in best], abs=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_token_ids_with_exclusion(tiny_policy, exact_logprob, backend):
    """depth 1 (atomic ids): the HF backend's one-pass fast path masks excluded tokens too."""
    model, tokenizer, _ = tiny_policy
    paths = {str(t): [t] for t in range(5, 13)}
    gen = backend(model, ItemTrie.build(paths), depth=1, pad_id=tokenizer.pad_token_id, beam_width=1)
    prompt = tokenizer.convert_tokens_to_ids(["<bos>", "<hist>"])
    banned = {"5", "7", "8", "11", "12"}
    pairs = gen.top_items([prompt, prompt], 4, [banned, set(paths) - {"6"}])
    exact = {item: exact_logprob(model, prompt, ids) for item, ids in paths.items() if item not in banned}
    assert [i for i, _ in pairs[0]] == sorted(exact, key=lambda i: -exact[i])
    assert [i for i, _ in pairs[1]] == ["6"]


def test_exclude_must_have_one_set_per_prompt(sids, history_prompts):
    model, pad_id, depth, trie, _ = sids
    with pytest.raises(ValueError, match="2 sets for 3 prompts"):
        TrieBeamSearch(model, trie, depth, pad_id).top_items(history_prompts, 3, [set(), set()])
