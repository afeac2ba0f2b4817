import pytest

from training.rewards.group import RolloutGroup, score_group

GROUP = RolloutGroup(items=("a", "b", "c"), paths=((1, 4, 7), (1, 5, 8), (2, 6, 9)), logprobs=(-1.0, -0.5, -3.0),
                     target="a", target_path=(1, 4, 7))


def test_each_reward_gets_its_parts():
    assert score_group("hit", GROUP) == [1.0, 0.0, 0.0]
    # ranked by log-prob: b (rank 0), a (rank 1), c; a gets 1/log2(3) = 0.6309, b 1/log2(2) - 1/log2(1)... see rank.py
    ranked = score_group("rank_ndcg", GROUP)
    assert ranked[0] == pytest.approx(0.6309, abs=1e-4) and ranked[1] < 0 and ranked[2] == 0.0
    # H = 2 levels: a shares 2/2, b 1/2, c 0/2; beta 1/2 -> 1, sqrt(0.5), 0
    assert score_group("prefix", GROUP, num_levels=2) == pytest.approx([1.0, 0.7071, 0.0], abs=1e-4)


def test_unknown_or_unusable_rewards_are_clear_errors():
    with pytest.raises(ValueError, match="SID levels"):
        score_group("prefix", GROUP)
    with pytest.raises(ValueError, match="single-item groups"):
        score_group("list_lcs", GROUP)
