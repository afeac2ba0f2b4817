import math

import pytest
import torch

from training.algorithms.advantages import get_advantage
from training.rewards import get_reward
from training.rewards.recpo import compute_recpo_reward, compute_target_ranks, compute_target_softmax

# G = 2 trajectories over N = 4 items, target index 1.
#   row 0: target scores 2, nobody else >= 2 -> rank 0, NDCG 1;
#          softmax e^2 / (1 + e^2 + e + 1) = 7.389056 / 12.107338 = 0.610296
#   row 1: items 0 (3), 2 (2), 3 (1, a tie: counts against) -> rank 3, NDCG 1/log2(5) = 0.43068;
#          softmax e / (e^3 + e + e^2 + e) = 0.082595
SCORES = torch.tensor([[0.0, 2.0, 1.0, 0.0], [3.0, 1.0, 2.0, 1.0]])
R0 = 0.95 * 1.0 + 0.05 * 0.610296  # 0.980515
R1 = 0.95 * 0.43068 + 0.05 * 0.082595  # 0.413276


def test_ranks_and_softmax_by_hand():
    assert compute_target_ranks(SCORES, 1) == [0, 3]
    assert compute_target_softmax(SCORES, 1) == pytest.approx([0.610296, 0.082595], abs=1e-5)


def test_fused_reward_is_095_ndcg_plus_005_softmax():
    assert get_reward("recpo") is compute_recpo_reward
    assert compute_recpo_reward(SCORES, 1) == pytest.approx([R0, R1], abs=1e-5)
    assert compute_recpo_reward(SCORES, 1, softmax_weight=0.0) == pytest.approx([1.0, 1 / math.log2(5)], abs=1e-6)


def test_cutoff_and_excluded_history():
    # NDCG@2: row 1 (rank 3) keeps only the softmax term 0.05 * 0.082595
    assert compute_recpo_reward(SCORES, 1, cutoff=2)[1] == pytest.approx(0.05 * 0.082595, abs=1e-6)
    # history item 0 masked: row 1 has items 2 and 3 ahead -> rank 2, NDCG 0.5; softmax e / (e + e^2 + e) = 0.211942
    assert compute_recpo_reward(SCORES, 1, exclude=[0])[1] == pytest.approx(0.95 * 0.5 + 0.05 * 0.211942, abs=1e-6)
    # the target itself is never masked
    assert compute_recpo_reward(SCORES, 1, exclude=[1]) == pytest.approx([R0, R1], abs=1e-5)


def test_recpo_advantages_by_hand():
    rewards = torch.tensor([compute_recpo_reward(SCORES, 1)])
    # GRPO with G = 2: (r - mean) / sample std = ±1/sqrt(2) whatever the gap
    assert torch.allclose(get_advantage("grpo")(rewards), torch.tensor([[0.70711, -0.70711]]), atol=1e-4)
    # RLOO: r_i - mean of the others = ±(R0 - R1) = ±0.56724
    assert torch.allclose(get_advantage("rloo")(rewards), torch.tensor([[R0 - R1, R1 - R0]]), atol=1e-4)
    # G = 4, rewards [1, .5, .5, 0]: mean .5, sample std .40825 -> GRPO ±1.22474; RLOO 1 - 1/3, 0, 0, -2/3
    four = torch.tensor([[1.0, 0.5, 0.5, 0.0]])
    assert torch.allclose(get_advantage("grpo")(four), torch.tensor([[1.22474, 0.0, 0.0, -1.22474]]), atol=1e-4)
    assert torch.allclose(get_advantage("rloo")(four), torch.tensor([[2 / 3, 0.0, 0.0, -2 / 3]]), atol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="outside the catalog"):
        compute_recpo_reward(SCORES, 4)
    with pytest.raises(ValueError, match="cutoff"):
        compute_recpo_reward(SCORES, 1, cutoff=0)
    with pytest.raises(ValueError, match=r"\[G, N\]"):
        compute_recpo_reward(SCORES[0], 1)
