import pytest

from training.rewards.lcs import compute_list_lcs_reward, count_list_errors, weighted_lcs

# position weights w(i) = 1/log2(i+1): w1 = 1.0, w2 = 0.630930, w3 = 0.5, w4 = 0.430677
W1, W2, W3, W4 = 1.0, 0.630930, 0.5, 0.430677


def test_perfect_list_gets_one():
    # WLCS = w1 + w2 + w3 = Z -> 1.0
    assert compute_list_lcs_reward([["a", "b", "c"]], ["a", "b", "c"], k=3) == pytest.approx([1.0])


def test_earlier_correct_items_earn_more():
    # T=[a,b,c], Z = w1+w2+w3 = 2.130930
    # [a,b,x]: a@1, b@2 -> 1.630930 / 2.130930 = 0.765360
    # [x,a,b]: a@2, b@3 -> 1.130930 / 2.130930 = 0.530721
    got = compute_list_lcs_reward([["a", "b", "x"], ["x", "a", "b"]], ["a", "b", "c"], k=3)
    assert got == pytest.approx([0.765360, 0.530721], abs=1e-6)


def test_order_of_the_next_items_matters():
    # T=[a,b], R=[b,a]: only one item can be in a common subsequence: b@1 (w1=1) beats a@2 (w2)
    # Z = w1 + w2 = 1.630930 -> 1 / 1.630930 = 0.613147
    assert compute_list_lcs_reward([["b", "a"]], ["a", "b"], k=2) == pytest.approx([0.613147], abs=1e-6)


def test_heavier_beats_longer():
    # T=[a,b,c], R=[c,x,a,b]: c@1 -> 1.0 vs a@3,b@4 -> w3 + w4 = 0.930677; max = 1.0
    assert weighted_lcs(["c", "x", "a", "b"], ["a", "b", "c"]) == pytest.approx(1.0)
    # Z = sum over min(k=4, |T|=3) = 3 positions = 2.130930 -> 1 / 2.130930 = 0.469278
    assert compute_list_lcs_reward([["c", "x", "a", "b"]], ["a", "b", "c"], k=4) == pytest.approx([0.469278], abs=1e-6)


def test_duplicates_are_penalised():
    # T=[a,b], R=[a,a,b], k=3: WLCS = a@1 + b@3 = 1.5; Z = w1 + w2 = 1.630930 -> 0.919721
    # one duplicate (position 2): -1.0 * 1/3 = -0.333333 -> 0.586388
    assert count_list_errors(["a", "a", "b"], None) == (1, 0)
    assert compute_list_lcs_reward([["a", "a", "b"]], ["a", "b"], k=3) == pytest.approx([0.586388], abs=1e-6)
    # with a smaller penalty 0.3: 0.919721 - 0.3/3 = 0.819721
    got = compute_list_lcs_reward([["a", "a", "b"]], ["a", "b"], k=3, duplicate_penalty=0.3)
    assert got == pytest.approx([0.819721], abs=1e-6)


def test_invalid_items_are_penalised():
    # T=[a], R=[z,a], k=2, catalog {a,b,c}: WLCS = a@2 = 0.630930; Z = w1 = 1
    # z invalid: -1.0 * 1/2 -> 0.630930 - 0.5 = 0.130930; without a catalog no penalty -> 0.630930
    assert compute_list_lcs_reward([["z", "a"]], ["a"], k=2, valid_items={"a", "b", "c"}) == pytest.approx(
        [0.130930], abs=1e-6
    )
    assert compute_list_lcs_reward([["z", "a"]], ["a"], k=2) == pytest.approx([0.630930], abs=1e-6)


def test_only_the_first_k_items_count():
    # k=2: R=[x,y,a] is cut to [x,y]; its duplicate-free, catalog-free score is 0
    assert compute_list_lcs_reward([["x", "y", "a"]], ["a"], k=2) == [0.0]


def test_empty_lists_group_and_targets():
    assert compute_list_lcs_reward([[]], ["a"], k=3) == [0.0]
    assert compute_list_lcs_reward([], ["a"], k=3) == []
    # no next items: first term 0, penalties still apply: one duplicate of k=2 -> -0.5
    assert compute_list_lcs_reward([["a", "b"], ["a", "a"]], [], k=2) == [0.0, -0.5]
    with pytest.raises(ValueError, match="k must be"):
        compute_list_lcs_reward([["a"]], ["a"], k=0)
