import math

import pytest
import torch

from training.algorithms.advantages import (
    ADVANTAGES,
    compute_grpo_advantage,
    compute_pass_at_k_bonus,
    compute_rloo_advantage,
    compute_srpo_advantage,
    drop_zero_variance,
    get_advantage,
    zero_variance_groups,
)


def test_registry_names_and_lookup():
    assert set(ADVANTAGES) == {"grpo", "rloo", "srpo"}
    assert get_advantage("grpo") is compute_grpo_advantage
    with pytest.raises(KeyError, match="known"):
        get_advantage("ppo")


def test_grpo_matches_hand_computation():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [3.0, 1.0, 2.0, 2.0]])
    # row 0: mean 0.5, sample std sqrt(4 * 0.25 / 3) = 0.5774 -> ±0.5 / 0.5774 = ±0.8660
    # row 1: mean 2, deviations 1, -1, 0, 0, sample std sqrt(2 / 3) = 0.8165 -> ±1.2247, 0, 0
    expected = torch.tensor([[0.866, -0.866, -0.866, 0.866], [1.2247, -1.2247, 0.0, 0.0]])
    assert torch.allclose(compute_grpo_advantage(r), expected, atol=1e-3)


def test_grpo_edge_cases_give_zero_not_nan():
    same = compute_grpo_advantage(torch.tensor([[0.7, 0.7, 0.7]]))  # (0.7 - 0.7) / (0 + eps) = 0
    assert torch.equal(same, torch.zeros(1, 3))
    single = compute_grpo_advantage(torch.tensor([[1.0], [0.0]]))  # G = 1: no spread
    assert torch.equal(single, torch.zeros(2, 1))
    assert compute_grpo_advantage(torch.zeros(0, 4)).shape == (0, 4)


def test_rloo_matches_hand_computation():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [3.0, 1.0, 2.0, 2.0]])
    # row 0: r_0 = 1, others (0 + 0 + 1) / 3 = 1/3 -> 2/3;  r_1 = 0, others (1 + 0 + 1) / 3 -> -2/3
    # row 1: 3 - (1 + 2 + 2) / 3 = 4/3;  1 - (3 + 2 + 2) / 3 = -4/3;  2 - (3 + 1 + 2) / 3 = 0
    expected = torch.tensor([[2 / 3, -2 / 3, -2 / 3, 2 / 3], [4 / 3, -4 / 3, 0.0, 0.0]])
    assert torch.allclose(compute_rloo_advantage(r), expected, atol=1e-6)


def test_rloo_edge_cases():
    assert torch.equal(compute_rloo_advantage(torch.tensor([[0.0, 0.0, 0.0]])), torch.zeros(1, 3))
    assert torch.equal(compute_rloo_advantage(torch.tensor([[1.0]])), torch.zeros(1, 1))


def test_pass_at_k_bonus_matches_hand_computation():
    success = torch.tensor([[True, False, False, False], [True, True, False, False]])
    # G = 4, k = 2, C(4, 2) = 6.
    # c = 1: rho = 1 - C(3,2)/6 = 0.5, sigma = 0.5; pos = 0.5/0.5 = 1;
    #        delta = C(2,1)/C(3,1) = 2/3, neg = (0.5 - 2/3)/0.5 = -1/3
    # c = 2: rho = 1 - C(2,2)/6 = 5/6, sigma = sqrt(5/36) = 0.3727; pos = (1/6)/0.3727 = 0.4472;
    #        delta = C(1,1)/C(3,1) = 1/3, neg = (1/6 - 1/3)/0.3727 = -0.4472
    expected = torch.tensor([[1.0, -1 / 3, -1 / 3, -1 / 3], [0.4472, 0.4472, -0.4472, -0.4472]])
    assert torch.allclose(compute_pass_at_k_bonus(success, k=2), expected, atol=1e-4)


def test_pass_at_k_bonus_zero_when_sigma_is_zero():
    # c = 0: rho = 0; c = G: rho = 1; c = 3, k = 2 > G - c = 1: C(1,2) = 0 so rho = 1. sigma = 0 in all three.
    success = torch.tensor([[False] * 4, [True] * 4, [True, True, True, False]])
    assert torch.equal(compute_pass_at_k_bonus(success, k=2), torch.zeros(3, 4))
    # G = 1, k = 1: rho is 0 or 1
    assert torch.equal(compute_pass_at_k_bonus(torch.tensor([[True], [False]]), k=1), torch.zeros(2, 1))


def test_pass_at_k_bonus_with_k1_is_the_population_z_score():
    # k = 1: rho = c/G, pos = (1 - p)/sqrt(p(1-p)), delta = 1, neg = -p/sqrt(p(1-p)): the z-score with
    # the population std. G = 4, c = 1: p = 1/4, sqrt(3/16) = 0.4330 -> 0.75/0.4330 = 1.7321, -0.25/0.4330 = -0.5774
    success = torch.tensor([[True, False, False, False]])
    assert torch.allclose(compute_pass_at_k_bonus(success, k=1), torch.tensor([[1.7321, -0.5774, -0.5774, -0.5774]]),
                          atol=1e-4)


def test_pass_at_k_bonus_rejects_bad_k():
    with pytest.raises(ValueError, match="1 <= k <= group_size"):
        compute_pass_at_k_bonus(torch.zeros(1, 4, dtype=torch.bool), k=5)
    with pytest.raises(ValueError):
        compute_pass_at_k_bonus(torch.zeros(1, 4, dtype=torch.bool), k=0)


def test_srpo_adds_dense_and_bonus_hand_computation():
    r = torch.tensor([[1.0, 0.5, 0.0, 0.0]])  # graded prefix rewards; only the first is an exact hit (c = 1)
    # A^rs: mean 0.375, deviations 0.625, 0.125, -0.375, -0.375; sample var (0.390625 + 0.015625 + 2 * 0.140625) / 3
    #       = 0.229167, std 0.478714 -> 1.30558, 0.26112, -0.78335, -0.78335
    # bonus (G = 4, k = 2, c = 1, see above): 1, -1/3, -1/3, -1/3
    expected = torch.tensor([[2.30558, -0.07221, -1.11668, -1.11668]])
    assert torch.allclose(compute_srpo_advantage(r, k=2), expected, atol=1e-4)
    bonus_only = compute_srpo_advantage(r, k=2, include_dense=False)
    assert torch.allclose(bonus_only, torch.tensor([[1.0, -1 / 3, -1 / 3, -1 / 3]]), atol=1e-6)


def test_srpo_edge_cases():
    # c = 0 with graded rewards: bonus 0, only A^rs = z-score of (0.5, 0, 0, 0): mean 0.125, std 0.25 -> 1.5, -0.5
    r = torch.tensor([[0.5, 0.0, 0.0, 0.0]])
    assert torch.allclose(compute_srpo_advantage(r, k=2), torch.tensor([[1.5, -0.5, -0.5, -0.5]]), atol=1e-4)
    # c = G and all-same rewards: A^rs = 0 and bonus = 0
    assert torch.equal(compute_srpo_advantage(torch.ones(2, 4), k=3), torch.zeros(2, 4))
    assert torch.equal(compute_srpo_advantage(torch.zeros(1, 4), k=1), torch.zeros(1, 4))
    # G = 1
    assert torch.equal(compute_srpo_advantage(torch.tensor([[1.0]]), k=1), torch.zeros(1, 1))


def test_srpo_explicit_success_overrides_threshold():
    r = torch.tensor([[2.0, 0.0, 0.0, 0.0]])  # a reward scale where "hit" is not 1.0
    success = torch.tensor([[True, False, False, False]])
    bonus = compute_srpo_advantage(r, k=2, success=success, include_dense=False)
    assert torch.allclose(bonus, torch.tensor([[1.0, -1 / 3, -1 / 3, -1 / 3]]), atol=1e-6)


def test_zero_variance_groups_and_drop():
    r = torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.5]])
    assert zero_variance_groups(r).tolist() == [True, False, True]
    logp = torch.arange(9.0).reshape(3, 3)
    dropped = drop_zero_variance(r, logp)
    assert dropped.keep.tolist() == [False, True, False]
    assert dropped.zero_variance_share == pytest.approx(2 / 3)
    assert torch.equal(dropped.rewards, r[1:2])
    assert torch.equal(dropped.aligned[0], torch.tensor([[3.0, 4.0, 5.0]]))


def test_zero_variance_edge_cases():
    assert zero_variance_groups(torch.tensor([[0.3], [0.9]])).tolist() == [True, True]  # G = 1
    empty = drop_zero_variance(torch.zeros(0, 4))
    assert empty.zero_variance_share == 0.0 and empty.rewards.shape == (0, 4)
    assert not math.isnan(empty.zero_variance_share)
    assert zero_variance_groups(torch.tensor([[0.5, 0.5 + 1e-9]]), atol=1e-6).tolist() == [True]
    with pytest.raises(ValueError, match="groups"):
        drop_zero_variance(torch.zeros(2, 3), torch.zeros(3, 5))
