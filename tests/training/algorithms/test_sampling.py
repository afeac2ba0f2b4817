import random

import pytest

from training.algorithms.sampling import oversample_dedupe


def test_fills_with_duplicates_when_too_few_unique():
    items = ["a", "b", "a", "c", "a", "b"]
    # unique (first occurrences) at 0, 1, 3; duplicates at 2, 4, 5; n = 4 -> all 3 unique + 1 duplicate
    # duplicate share = (6 - 3) / 6 = 0.5
    out = oversample_dedupe(items, 4, random.Random(0))
    assert len(out.indices) == 4 and {0, 1, 3} <= set(out.indices)
    assert len(set(out.indices) & {2, 4, 5}) == 1
    assert out.duplicate_share == pytest.approx(0.5) and out.n_unique == 3
    assert out.indices == sorted(out.indices)


def test_deterministic_for_a_seed():
    items = [("x", 1), ("y", 2), ("x", 1), ("z", 3), ("y", 2), ("x", 1)]  # token tuples work as items
    assert oversample_dedupe(items, 5, random.Random(7)) == oversample_dedupe(items, 5, random.Random(7))


def test_keeps_a_random_n_of_the_unique_when_enough():
    items = ["a", "b", "c", "d", "a"]
    # |unique| = 4 >= n = 2: two of indices 0..3, never the duplicate 4; share 1 / 5 = 0.2
    seen = set()
    for seed in range(50):
        out = oversample_dedupe(items, 2, random.Random(seed))
        assert len(out.indices) == 2 and 4 not in out.indices
        assert out.duplicate_share == pytest.approx(0.2)
        seen.update(out.indices)
    assert seen == {0, 1, 2, 3}  # not always the first n in draw order


def test_edge_cases():
    assert oversample_dedupe(["a", "a"], 4, random.Random(0)).indices == [0, 1]  # m < n: keep all m
    empty = oversample_dedupe([], 4, random.Random(0))
    assert empty.indices == [] and empty.duplicate_share == 0.0 and empty.n_unique == 0
    assert oversample_dedupe(["a", "b"], 0, random.Random(0)).indices == []
    assert oversample_dedupe(["a", "a", "a"], 2, random.Random(0)).duplicate_share == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        oversample_dedupe(["a"], -1, random.Random(0))
