import math

import numpy as np
import pytest

from training.eval.metrics import (
    coverage_at_k,
    head_items,
    hit_at_k,
    invalid_rate,
    long_tail_items,
    ndcg_at_k,
    per_sample_metrics,
    rank_of_target,
)


def test_rank_of_target_first_occurrence_or_none():
    assert rank_of_target(["a", "b", "c"], "c") == 2
    assert rank_of_target(["a", "b", "b"], "b") == 1
    assert rank_of_target(["a", "b"], "z") is None


def test_hit_and_ndcg_hand_values():
    assert ndcg_at_k(0, 10) == 1.0
    assert ndcg_at_k(2, 10) == pytest.approx(0.5)  # 1 / log2(4)
    assert ndcg_at_k(1, 10) == pytest.approx(1 / math.log2(3))
    assert ndcg_at_k(10, 10) == 0.0
    assert ndcg_at_k(None, 10) == 0.0
    assert hit_at_k(9, 10) == 1.0
    assert hit_at_k(10, 10) == 0.0
    assert hit_at_k(None, 10) == 0.0


def test_per_sample_metrics_keys_and_values():
    ranked = [["a", "b", "c", "d", "e", "f"], ["b", "a"], ["x"]]
    out = per_sample_metrics(ranked, ["a", "a", "a"], ks=(1, 5))
    assert set(out) == {"hr@1", "ndcg@1", "hr@5", "ndcg@5"}
    np.testing.assert_allclose(out["hr@1"], [1, 0, 0])
    np.testing.assert_allclose(out["hr@5"], [1, 1, 0])
    np.testing.assert_allclose(out["ndcg@5"], [1, 1 / math.log2(3), 0])
    assert out["hr@5"].dtype == np.float64


def test_per_sample_metrics_length_mismatch():
    with pytest.raises(ValueError):
        per_sample_metrics([["a"]], ["a", "b"])


def test_coverage_hand_example():
    lists = [["a", "b"], ["b", "c"]]
    assert coverage_at_k(lists, 1, 4) == 0.5  # {a, b} / 4
    assert coverage_at_k(lists, 2, 4) == 0.75  # {a, b, c} / 4
    assert coverage_at_k([["a", "zz"]], 2, 4, catalog={"a", "b", "c", "d"}) == 0.25


def test_invalid_rate_non_catalog_duplicate_and_missing():
    catalog = {"a", "b", "c"}
    assert invalid_rate([["a", "x"], ["b", "b"]], catalog, 2) == 0.5  # x and the second b: 2 of 4
    assert invalid_rate([["a"]], catalog, 2) == 0.5  # one missing slot of 2
    assert invalid_rate([["a", "b", "c"]], catalog, 20) == 0.0  # k capped at the catalog size
    assert invalid_rate([], catalog, 10) == 0.0


def test_head_items_top_share_ties_by_id():
    counts = {"3": 5, "1": 5, "2": 2, "10": 1, "x": 1, "never": 0}
    # 5 items occur in training -> ceil(0.2 * 5) = 1 head item; the tie 1 vs 3 goes to "1"
    assert head_items(counts) == {"1"}
    # numeric ids tie numerically: "9" before "10"
    counts = {"10": 7, "9": 7, "1": 1, "2": 1, "3": 1}
    assert head_items(counts) == {"9"}
    assert head_items(counts, head_share=0.5) == {"9", "10", "1"}  # ceil(2.5) = 3
    assert head_items(counts, head_share=0.0) == set()


def test_long_tail_items_include_never_seen_catalog_items():
    counts = {str(i): 10 - i for i in range(10)}  # "0" has 10, ..., "9" has 1
    assert head_items(counts) == {"0", "1"}
    assert long_tail_items(counts) == {str(i) for i in range(2, 10)}
    tail = long_tail_items(counts, catalog_ids=[str(i) for i in range(12)])
    assert "11" in tail and "0" not in tail and len(tail) == 10
