import pytest

from training.rewards.format_reward import compute_direct_format_reward, compute_list_format_reward

CATALOG = {"1", "2", "3", "4"}


def test_direct_format_follows_the_trie_walk():
    assert compute_direct_format_reward([True, False, True]) == [1.0, 0.0, 1.0]
    assert compute_direct_format_reward([]) == []


def test_list_format_needs_k_distinct_valid_items():
    lists = [
        ["1", "2", "3"],  # well formed -> 1.0
        ["1", "2"],  # too short -> 0.0
        ["1", "2", "3", "4"],  # too long -> 0.0
        ["1", "1", "2"],  # duplicate -> 0.0
        ["1", "2", "9"],  # "9" not in the catalog -> 0.0
        [],  # empty -> 0.0
    ]
    assert compute_list_format_reward(lists, 3, CATALOG) == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]


def test_list_format_rejects_bad_k():
    with pytest.raises(ValueError, match="k must be"):
        compute_list_format_reward([["1"]], 0, CATALOG)
