"""RecLLM-R1 list reward against numbers computed by hand (recllm_r1.txt §4.2)."""

import pytest

from training.rewards.recllm_list import length_error, recllm_list_reward
from training.rewards.registry import get_reward

pytestmark = pytest.mark.timeout(30)

# position weights w(i) = 1/log2(i+1): w1 = 1.0, w2 = 0.630930, w3 = 0.5
VALID = {"a", "b", "c", "x", "y"}


def test_registered_under_its_name():
    assert get_reward("list_lcs_recllm") is recllm_list_reward


def test_perfect_list_gets_one():
    # (1 - 0.1) * 1 + 0.1 * 1 = 1.0
    assert recllm_list_reward([["a", "b", "c"]], ["a", "b", "c"], 3, VALID) == pytest.approx([1.0])


def test_lcs_and_format_mix():
    # T=[a,b,c], Z = w1+w2+w3 = 2.130930
    # [a,b,x]: WLCS = 1.630930 -> 0.765360; 0.9 * 0.765360 + 0.1 = 0.788824
    # [x,y,a]: a@3 -> 0.5 / 2.130930 = 0.234639; 0.9 * 0.234639 + 0.1 = 0.311175
    # [x,y,c]: c@3 -> the same 0.311175 (any single match at position 3)
    got = recllm_list_reward([["a", "b", "x"], ["x", "y", "a"], ["x", "y", "c"]], ["a", "b", "c"], 3, VALID)
    assert got == pytest.approx([0.788824, 0.311175, 0.311175], abs=1e-6)


def test_single_target_reference():
    # T=[b] (the target alone): Z = w1; [x,b,y]: b@2 -> 0.630930; 0.9 * 0.630930 + 0.1 = 0.667837
    assert recllm_list_reward([["x", "b", "y"]], ["b"], 3, VALID) == pytest.approx([0.667837], abs=1e-6)
    # a miss earns the format part only
    assert recllm_list_reward([["x", "y", "c"]], ["b"], 3, VALID) == pytest.approx([0.1])


def test_duplicates_cost_their_share_and_the_format_part():
    # T=[a,b], R=[a,a,b]: WLCS = a@1 + b@3 = 1.5, Z = 1.630930 -> 0.919721
    # not well formed (repeat): 0.9 * 0.919721 + 0 = 0.827749; one duplicate: -1/3 -> 0.494416
    assert recllm_list_reward([["a", "a", "b"]], ["a", "b"], 3, VALID) == pytest.approx([0.494416], abs=1e-6)
    # duplicate penalty 0.3: 0.827749 - 0.1 = 0.727749
    got = recllm_list_reward([["a", "a", "b"]], ["a", "b"], 3, VALID, duplicate_penalty=0.3)
    assert got == pytest.approx([0.727749], abs=1e-6)


def test_invalid_items_cost_their_share():
    # T=[a], R=[a,z,q]: WLCS = 1 -> 0.9; two invalid ids: -2/3 -> 0.233333
    assert recllm_list_reward([["a", "z", "q"]], ["a"], 3, VALID) == pytest.approx([0.233333], abs=1e-6)
    # invalid penalty 0.5: 0.9 - 1/3 = 0.566667
    got = recllm_list_reward([["a", "z", "q"]], ["a"], 3, VALID, invalid_penalty=0.5)
    assert got == pytest.approx([0.566667], abs=1e-6)


def test_wrong_length_is_penalised():
    assert length_error(3, 3) == 0.0 and length_error(2, 4) == 0.5 and length_error(9, 4) == 1.0
    # k=4, T=[a], R=[a,b]: WLCS/Z = 1 -> 0.9 (not well formed); |2-4|/4 = 0.5 -> 0.4
    assert recllm_list_reward([["a", "b"]], ["a"], 4, VALID) == pytest.approx([0.4])
    # too long: k=2, R=[x,a,b]: only R[:2] counts, a@2 -> 0.630930; 0.9 * 0.630930 = 0.567837; -0.5 * 1/2
    got = recllm_list_reward([["x", "a", "b"]], ["a"], 2, VALID, length_penalty=0.5)
    assert got == pytest.approx([0.317837], abs=1e-6)
    # empty list: no LCS, no format, the full length penalty
    assert recllm_list_reward([[]], ["a"], 3, VALID) == pytest.approx([-1.0])


def test_format_weight_is_checked():
    with pytest.raises(ValueError, match="format_weight"):
        recllm_list_reward([["a"]], ["a"], 1, VALID, format_weight=1.5)
    # f = 0: pure LCS
    assert recllm_list_reward([["x", "a"]], ["a"], 2, VALID, format_weight=0.0) == pytest.approx([0.630930], abs=1e-6)
