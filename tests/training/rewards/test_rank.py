import pytest

from training.rewards.rank import compute_rank_ndcg_reward, rank_items_by_logprob

# 1/log2(2) = 1.0, 1/log2(3) = 0.630930, 1/log2(4) = 0.5
ITEMS = ["a", "b", "t", "a", "c"]
LOGPROBS = [-0.5, -1.0, -1.2, -0.5, -3.0]


def test_group_is_ranked_by_logprob_distinct_items():
    assert rank_items_by_logprob(ITEMS, LOGPROBS) == ["a", "b", "t", "c"]


def test_rank_ndcg_matches_hand_computation():
    # L = [a, b, t, c], target t at rank r=2: NDCG(L) = 1/log2(4) = 0.5
    # t: 0.5 - 0 = 0.5; a, b (above): removing one lifts t to rank 1 -> 0.5 - 0.630930 = -0.130930; c (below): 0
    got = compute_rank_ndcg_reward(ITEMS, LOGPROBS, "t")
    assert got == pytest.approx([-0.130930, -0.130930, 0.5, -0.130930, 0.0], abs=1e-6)


def test_target_on_top_gets_one_and_nobody_is_blamed():
    # r=0: t gets 1/log2(2) = 1.0, x below it gets 0
    assert compute_rank_ndcg_reward(["x", "t"], [-2.0, -0.1], "t") == [0.0, 1.0]


def test_ties_keep_first_appearance():
    # equal log-probs: x (seen first) ranks 0, t ranks 1 -> t: 0.630930, x: 0.630930 - 1.0 = -0.369070
    got = compute_rank_ndcg_reward(["x", "t"], [-1.0, -1.0], "t")
    assert got == pytest.approx([-0.369070, 0.630930], abs=1e-6)


def test_cutoff_blames_items_that_push_the_target_out_of_the_top_k():
    # k=2, t at r=2 -> NDCG@2 = 0, so t earns 0; removing a or b puts t at r=1 < 2 -> 0 - 0.630930
    got = compute_rank_ndcg_reward(ITEMS, LOGPROBS, "t", k=2)
    assert got == pytest.approx([-0.630930, -0.630930, 0.0, -0.630930, 0.0], abs=1e-6)


def test_target_absent_and_empty_group_and_bad_input():
    assert compute_rank_ndcg_reward(["a", "b"], [-1.0, -2.0], "t") == [0.0, 0.0]
    assert compute_rank_ndcg_reward([], [], "t") == []
    with pytest.raises(ValueError, match="log-probs"):
        compute_rank_ndcg_reward(["a"], [], "t")
    with pytest.raises(ValueError, match="k must be"):
        compute_rank_ndcg_reward(["a"], [-1.0], "t", k=0)
