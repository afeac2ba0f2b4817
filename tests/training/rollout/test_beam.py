import pytest
import torch

from training.models.policy_recommender import build_item_trie
from training.rollout.beam import TrieBeamSearch, select_beams
from training.rollout.generator import HFTrieBeamGenerator


def test_select_beams_hand_case():
    # 1 prompt, 2 beams with scores [0, -1]; candidates per beam: [tok 0, tok 1] and [tok 2, none]
    logprobs = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))
    candidates = torch.tensor([[0, 1], [2, -1]])
    parent, tokens, scores = select_beams(logprobs, torch.tensor([0.0, -1.0]), candidates, 1, 3)
    # totals: tok 0 -> log .5 = -0.693; tok 1 -> log .25 = -1.386; tok 2 -> -1 + log .8 = -1.223
    assert tokens.tolist() == [[0, 2, 1]]
    assert parent.tolist() == [[0, 1, 0]]
    expected = [torch.log(torch.tensor(0.5)), -1 + torch.log(torch.tensor(0.8)), torch.log(torch.tensor(0.25))]
    assert torch.allclose(scores[0], torch.stack(expected))


def test_full_width_beam_equals_exhaustive_ranking(tiny_policy, history_prompts, exact_logprob):
    model, tokenizer, scheme = tiny_policy
    trie, item_ids = build_item_trie(scheme, tokenizer)
    search = TrieBeamSearch(model, trie, scheme.depth, tokenizer.pad_token_id, beam_width=len(item_ids))
    prompts = history_prompts
    results = search.top_items(prompts, k=len(item_ids))
    for prompt, pairs in zip(prompts, results, strict=True):
        exact = {item: exact_logprob(model, prompt, ids) for item, ids in item_ids.items()}
        assert [i for i, _ in pairs] == sorted(exact, key=lambda i: -exact[i])
        for item, score in pairs:
            assert score == pytest.approx(exact[item], abs=1e-4)


def test_beam_results_are_distinct_valid_items_and_match_hf_generate(tiny_policy, history_prompts):
    model, tokenizer, scheme = tiny_policy
    trie, item_ids = build_item_trie(scheme, tokenizer)
    prompts = history_prompts
    ours = TrieBeamSearch(model, trie, scheme.depth, tokenizer.pad_token_id, beam_width=5).top_items(prompts, 5)
    hf = HFTrieBeamGenerator(model, trie, scheme.depth, tokenizer.pad_token_id, beam_width=5).top_items(prompts, 5)
    for a, b in zip(ours, hf, strict=True):
        items = [i for i, _ in a]
        assert len(items) == 5 and len(set(items)) == 5 and all(i in item_ids for i in items)
        assert items == [i for i, _ in b]
        assert [s for _, s in a] == pytest.approx([s for _, s in b], abs=1e-4)


def test_variable_length_items_rank_exactly(tiny_policy, exact_logprob):
    """Titles: ids of different lengths ending in EOS; finished beams keep their score (STAY)."""
    from training.identifiers.trie import ItemTrie

    model, tokenizer, _ = tiny_policy
    eos = tokenizer.eos_token_id
    paths = {"a": [5, eos], "b": [6, 7, eos], "c": [6, 8, 9, eos], "d": [10, eos]}
    search = TrieBeamSearch(model, ItemTrie.build(paths), depth=4, pad_id=tokenizer.pad_token_id, beam_width=4)
    prompt = tokenizer.convert_tokens_to_ids(["<bos>", "<hist>"])
    pairs = search.top_items([prompt], k=4)[0]
    exact = {item: exact_logprob(model, prompt, ids) for item, ids in paths.items()}
    assert [i for i, _ in pairs] == sorted(exact, key=lambda i: -exact[i])
    assert [s for _, s in pairs] == pytest.approx(sorted(exact.values(), reverse=True), abs=1e-4)
