"""Rollout-side helpers of the RL step, against numbers computed by hand."""

import pytest

from training.rollout.sampling import Completion
from training.trainers.rl_rollout import sampled_entropy


@pytest.mark.timeout(10)
def test_sampled_entropy_is_the_mean_negative_item_logprob():
    a = Completion("a", (1, 2), (-0.5, -1.0), (3, 2))  # log P = -1.5
    b = Completion("b", (3,), (-2.5,), (3,))  # log P = -2.5
    c = Completion("c", (4,), (-0.2,), (3,))  # log P = -0.2
    # (1.5 + 2.5 + 0.2) / 3 = 1.4
    assert sampled_entropy([[a, b], [c]]) == pytest.approx(1.4)
