"""List sampling (RecLLM-R1's action): K distinct real items per list, log-probs as the trainer recomputes them."""

import pytest
import torch

from training.catalog import Catalog
from training.config import PolicyConfig
from training.data.types import ItemInfo
from training.identifiers.base import build_scheme
from training.identifiers.trie import ItemTrie
from training.models.policy import build_policy
from training.models.policy_recommender import build_item_trie
from training.rollout.list_sampling import sample_lists
from training.rollout.sampling import TrieSampler
from training.rollout.scoring import completion_logprobs

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.timeout(60)]


@pytest.fixture
def sampler(tiny_policy):
    model, tokenizer, scheme = tiny_policy
    trie, item_ids = build_item_trie(scheme, tokenizer)
    return TrieSampler(model.eval(), trie, scheme.depth, tokenizer.pad_token_id), item_ids


def _recomputed(model, prompts, groups, pad_id=0):
    prompt_rows = [p for p, g in zip(prompts, groups, strict=True) for _ in g]
    lists = [c for g in groups for c in g]
    logprobs, mask = completion_logprobs(model, prompt_rows, [c.token_ids for c in lists], pad_id)
    expected = torch.nn.utils.rnn.pad_sequence([torch.tensor(c.logprobs) for c in lists], batch_first=True)
    assert mask.sum().item() == sum(len(c.logprobs) for c in lists)
    return logprobs, expected


def test_n_lists_of_k_distinct_real_items(sampler, history_prompts):
    s, item_ids = sampler
    groups = sample_lists(s, history_prompts, n_lists=4, list_length=5,
                          generator=torch.Generator().manual_seed(0))
    assert [len(g) for g in groups] == [4, 4, 4]
    for c in (c for g in groups for c in g):
        assert len(c.items) == 5 and len(set(c.items)) == 5 and all(i in item_ids for i in c.items)
        assert list(c.token_ids) == [t for i in c.items for t in item_ids[i]]  # items back to back, as in histories
        assert len(c.logprobs) == len(c.n_children) == len(c.token_ids)
        assert c.logprob == pytest.approx(sum(c.logprobs))


def test_no_invalid_or_repeated_item_in_200_lists_at_high_temperature(sampler, history_prompts):
    s, item_ids = sampler
    groups = sample_lists(s, history_prompts[:2], n_lists=100, list_length=10, temperature=3.0,
                          generator=torch.Generator().manual_seed(1))
    lists = [c for g in groups for c in g]
    assert len(lists) == 200
    assert sum(len(set(c.items)) != 10 for c in lists) == 0
    assert sum(i not in item_ids for c in lists for i in c.items) == 0


def test_a_list_can_take_the_whole_catalog(sampler, history_prompts):
    s, item_ids = sampler
    (group,) = sample_lists(s, history_prompts[:1], n_lists=3, list_length=len(item_ids),
                            generator=torch.Generator().manual_seed(2))
    assert all(sorted(c.items) == sorted(item_ids) for c in group)
    # the last item has one live path left: every level of it had exactly one candidate
    assert all(c.n_children[-s.depth:] == (1,) * s.depth for c in group)
    with pytest.raises(ValueError, match="list_length"):
        sample_lists(s, history_prompts[:1], n_lists=1, list_length=len(item_ids) + 1)


def test_logprobs_equal_the_trainers_recomputation(sampler, history_prompts):
    s, _ = sampler
    groups = sample_lists(s, history_prompts, n_lists=3, list_length=6, generator=torch.Generator().manual_seed(3))
    logprobs, expected = _recomputed(s.model, history_prompts, groups)
    assert torch.allclose(logprobs, expected, atol=1e-5)


def test_a_separator_is_recorded_between_items(sampler, history_prompts, tiny_policy):
    s, item_ids = sampler
    sep = tiny_policy[1].convert_tokens_to_ids("<sep>")
    groups = sample_lists(s, history_prompts, n_lists=2, list_length=3, generator=torch.Generator().manual_seed(4),
                          separator_id=sep)
    c = groups[0][0]
    a, b, d = (list(item_ids[i]) for i in c.items)
    assert list(c.token_ids) == a + [sep] + b + [sep] + d
    logprobs, expected = _recomputed(s.model, history_prompts, groups)
    assert torch.allclose(logprobs, expected, atol=1e-5)


def test_variable_length_titles_keep_exact_logprobs():
    """Titles end at different levels: finished rows feed masked pads, the cache still equals the plain sequence."""
    from training.tokenization.builder import build_tokenizer, collect_vocabulary

    catalog = Catalog([ItemInfo(str(i), "Film " * (1 + i % 3) + f"x{i}") for i in range(1, 9)])
    scheme = build_scheme("titles", catalog)
    tokenizer = build_tokenizer(collect_vocabulary(catalog, [], scheme.new_tokens(), min_word_count=1))
    model = build_policy(PolicyConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                                      intermediate_size=64), tokenizer).eval()
    trie, item_ids = build_item_trie(scheme, tokenizer)
    assert len({len(p) for p in item_ids.values()}) > 1
    s = TrieSampler(model, trie, max(len(p) for p in item_ids.values()), tokenizer.pad_token_id)
    prompts = [[tokenizer.bos_token_id, 5, 6, 7], [tokenizer.bos_token_id]]
    groups = sample_lists(s, prompts, n_lists=4, list_length=4, generator=torch.Generator().manual_seed(5))
    assert all(list(c.token_ids) == [t for i in c.items for t in item_ids[i]] for g in groups for c in g)
    logprobs, expected = _recomputed(model, prompts, groups, tokenizer.pad_token_id)
    assert torch.allclose(logprobs, expected, atol=1e-5)


def test_a_drawn_path_off_the_trie_raises():
    """Every list item must be a real item: a trie whose leaf carries no item is refused, not returned."""
    trie = ItemTrie.build({"a": [3], "b": [4]})
    trie._find([4]).item = None  # corrupt: the path [4] exists but names no item

    class Uniform(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, input_ids, attention_mask=None, position_ids=None, cache=None, use_cache=True,
                    logits_to_keep=None):
            return type("Out", (), {"logits": torch.zeros(*input_ids.shape, 8), "cache": cache or _NoCache()})()

    with pytest.raises(RuntimeError, match="drew"):
        sample_lists(TrieSampler(Uniform(), trie, 1, 0), [[1]], n_lists=50, list_length=2,
                     generator=torch.Generator().manual_seed(0))


class _NoCache:
    def reorder_cache(self, index):
        return None
