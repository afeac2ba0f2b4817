import math

import pytest

from training.rewards.prefix import compute_prefix_reward, longest_common_prefix

# H = 3 RQ levels + 1 disambiguation slot (the last token)
TARGET = (10, 20, 30, 40)


def test_prefix_reward_matches_hand_computation():
    sampled = [
        (10, 20, 30, 41),  # ell=3 (only the disambiguation slot differs) -> (3/3)^0.5 = 1.0
        (10, 20, 31, 40),  # ell=2 -> (2/3)^0.5 = 0.816497
        (10, 21, 30, 40),  # ell=1 (level 3 matches again, but after a miss) -> (1/3)^0.5 = 0.577350
        (11, 20, 30, 40),  # ell=0 -> 0.0
        (10, 20, 30, 40),  # exact item, ell=3 -> 1.0
    ]
    got = compute_prefix_reward(sampled, TARGET, num_levels=3)
    assert got == pytest.approx([1.0, 0.816497, 0.577350, 0.0, 1.0], abs=1e-6)


def test_prefix_reward_is_concave_in_ell_by_default():
    got = compute_prefix_reward([(11,), (10, 0), (10, 20, 0), (10, 20, 30)], TARGET, num_levels=3)
    gains = [b - a for a, b in zip(got, got[1:], strict=False)]
    # gains 0.577350, 0.239146, 0.183503: earlier levels are worth more (gream.txt §5.1)
    assert gains == pytest.approx([0.577350, 0.239146, 0.183503], abs=1e-6)


def test_prefix_reward_beta_changes_the_curve():
    # beta=1 is linear: ell=2 of H=3 -> 2/3 = 0.666667
    assert compute_prefix_reward([(10, 20, 31, 40)], TARGET, 3, beta=1.0) == pytest.approx([2 / 3])
    # beta=0.25, H=4, ell=1 -> (1/4)^0.25 = 0.707107
    target4 = (1, 2, 3, 4, 0)
    assert compute_prefix_reward([(1, 9, 9, 9, 0)], target4, 4, beta=0.25) == pytest.approx([0.707107], abs=1e-6)


def test_truncated_and_empty_paths():
    # (10,) -> ell=1 -> 0.577350; () -> ell=0 -> 0.0; empty group -> []
    assert compute_prefix_reward([(10,), ()], TARGET, 3) == pytest.approx([math.sqrt(1 / 3), 0.0])
    assert compute_prefix_reward([], TARGET, 3) == []
    assert longest_common_prefix((10, 20, 30, 40), TARGET, 3) == 3  # capped at H, slot excluded


@pytest.mark.parametrize(
    ("num_levels", "beta", "target", "message"),
    [(0, 0.5, TARGET, "num_levels"), (3, 0.0, TARGET, "beta"), (3, 1.5, TARGET, "beta"), (3, 0.5, (10, 20), "fewer")],
)
def test_prefix_reward_rejects_bad_arguments(num_levels, beta, target, message):
    with pytest.raises(ValueError, match=message):
        compute_prefix_reward([(10, 20, 30, 40)], target, num_levels, beta=beta)
