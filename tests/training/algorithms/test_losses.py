import math

import pytest
import torch

from training.algorithms.losses import (
    LOSSES,
    compute_clipped_pg_loss,
    compute_k3_kl,
    compute_k3_kl_loss,
    compute_kl_cov_loss,
    compute_simpo_loss,
    compute_unclipped_pg_loss,
    get_loss,
    select_kl_cov_outliers,
)

# Two sequences of two tokens; ratios r = 1.5, 0.5 (A = +1) and 1.1, 3.0 (A = -1); old logprobs 0.
RATIOS = torch.tensor([[1.5, 0.5], [1.1, 3.0]])
ADV = torch.tensor([1.0, -1.0])
OLD = torch.zeros(2, 2)


def test_registry_names_and_lookup():
    assert set(LOSSES) == {"clipped_pg", "unclipped_pg", "kl_cov", "simpo", "k3_kl"}
    assert get_loss("clipped_pg") is compute_clipped_pg_loss
    with pytest.raises(KeyError, match="known"):
        get_loss("dpo")


def test_clipped_pg_matches_hand_computation():
    # eps 0.2.  A=+1, r=1.5: max(-1.5, -1.2) = -1.2 (clipped);  r=0.5: max(-0.5, -0.8) = -0.5
    #           A=-1, r=1.1: max(1.1, 1.1) = 1.1;               r=3.0: max(3.0, 1.2) = 3.0
    # token mean over weight 4: (-1.2 - 0.5 + 1.1 + 3.0) / 4 = 0.6; clip fraction 1/4
    # approx_kl = mean(r - 1 - ln r) = (0.094535 + 0.193147 + 0.004690 + 0.901388) / 4 = 0.29844
    loss, stats = compute_clipped_pg_loss(RATIOS.log(), OLD, ADV, torch.ones(2, 2))
    assert loss.item() == pytest.approx(0.6, abs=1e-6)
    assert stats["clip_fraction"] == pytest.approx(0.25)
    assert stats["dual_clip_fraction"] == 0.0
    assert stats["approx_kl"] == pytest.approx(0.29844, abs=1e-5)


def test_clipped_pg_dual_clip_and_asymmetric_clip():
    # dual clip c = 2 on A = -1, r = 3: min(3.0, -2 * -1 = 2.0) = 2.0 -> (-1.2 - 0.5 + 1.1 + 2.0) / 4 = 0.35
    loss, stats = compute_clipped_pg_loss(RATIOS.log(), OLD, ADV, torch.ones(2, 2), dual_clip=2.0)
    assert loss.item() == pytest.approx(0.35, abs=1e-6)
    assert stats["dual_clip_fraction"] == pytest.approx(0.25)
    # clip_high 0.28: A=+1, r=1.5 -> max(-1.5, -1.28) = -1.28 -> (-1.28 - 0.5 + 1.1 + 3.0) / 4 = 0.58
    loss, _ = compute_clipped_pg_loss(RATIOS.log(), OLD, ADV, torch.ones(2, 2), clip_high=0.28)
    assert loss.item() == pytest.approx(0.58, abs=1e-6)
    with pytest.raises(ValueError, match="dual_clip"):
        compute_clipped_pg_loss(RATIOS.log(), OLD, ADV, torch.ones(2, 2), dual_clip=0.9)


def test_clipped_pg_weights_and_aggregations():
    w = torch.tensor([[1.0, 0.5], [1.0, 0.0]])
    # token: (1 * -1.2 + 0.5 * -0.5 + 1 * 1.1 + 0 * 3.0) / (1 + 0.5 + 1) = -0.35 / 2.5 = -0.14
    loss, _ = compute_clipped_pg_loss(RATIOS.log(), OLD, ADV, w)
    assert loss.item() == pytest.approx(-0.14, abs=1e-6)
    # sequence: row 0 (-1.2 - 0.25) / 1.5 = -0.96667, row 1 1.1 / 1 = 1.1 -> mean 0.066667
    loss, _ = compute_clipped_pg_loss(RATIOS.log(), OLD, ADV, w, agg="sequence")
    assert loss.item() == pytest.approx(0.066667, abs=1e-5)


def test_clipped_pg_gradient_is_zero_on_clipped_tokens():
    logp = RATIOS.log().clone().requires_grad_(True)
    loss, _ = compute_clipped_pg_loss(logp, OLD, ADV, torch.ones(2, 2))
    loss.backward()
    # d(-A r)/d logp = -A r, / 4 tokens: [0 (clipped), -0.5/4], [1.1/4, 3.0/4]
    assert torch.allclose(logp.grad, torch.tensor([[0.0, -0.125], [0.275, 0.75]]), atol=1e-6)


def test_pg_losses_with_no_live_tokens_give_zero_and_finite_grad():
    logp = torch.zeros(2, 3, requires_grad=True)
    for fn in (compute_clipped_pg_loss, compute_unclipped_pg_loss, compute_kl_cov_loss):
        loss, stats = fn(logp, torch.zeros(2, 3), torch.tensor([1.0, -1.0]), torch.zeros(2, 3))
        loss.backward()
        assert loss.item() == 0.0 and not any(math.isnan(v) for v in stats.values())
        assert torch.isfinite(logp.grad).all()


def test_unclipped_pg_matches_hand_computation():
    # -A r per token: [-1.5, -0.5], [1.1, 3.0]; RecLLM-R1 sequence mean: (-1.0 + 2.05) / 2 = 0.525
    loss, stats = compute_unclipped_pg_loss(RATIOS.log(), OLD, ADV, torch.ones(2, 2))
    assert loss.item() == pytest.approx(0.525, abs=1e-6)
    assert stats["ratio_mean"] == pytest.approx(1.525, abs=1e-6)
    # token mean is the same here (equal lengths): (-1.5 - 0.5 + 1.1 + 3.0) / 4 = 0.525
    loss, _ = compute_unclipped_pg_loss(RATIOS.log(), OLD, ADV, torch.ones(2, 2), agg="token")
    assert loss.item() == pytest.approx(0.525, abs=1e-6)


LOGP = torch.tensor([[-0.1, -0.2, -2.0], [-1.0, -0.5, -3.0]])


def test_kl_cov_outliers_match_hand_computation():
    # mean logp = -6.8 / 6 = -1.13333, mean A = 0.
    # Cov row 0 (A=+1):  1.03333, 0.93333, -0.86667;  row 1 (A=-1): -0.13333, -0.63333, 1.86667
    # ratio 0.34: floor(6 * 0.34) = 2 -> (1, 2) and (0, 0);  ratio 0.005: max(1, 0) = 1 -> (1, 2)
    out = select_kl_cov_outliers(LOGP, ADV, torch.ones(2, 3, dtype=torch.bool), ratio=0.34)
    assert out.tolist() == [[True, False, False], [False, False, True]]
    out = select_kl_cov_outliers(LOGP, ADV, torch.ones(2, 3, dtype=torch.bool), ratio=0.005)
    assert out.tolist() == [[False, False, False], [False, False, True]]


def test_kl_cov_means_are_over_the_candidate_set():
    cand = torch.tensor([[True, True, True], [True, False, False]])
    # candidates logp -0.1, -0.2, -2.0, -1.0 (mean -0.825), A 1, 1, 1, -1 (mean 0.5)
    # Cov: 0.725 * 0.5 = 0.3625, 0.625 * 0.5 = 0.3125, -1.175 * 0.5 = -0.5875, -0.175 * -1.5 = 0.2625
    # ratio 0.5 -> 2 outliers: (0, 0), (0, 1); the non-candidate (1, 2) is never chosen
    out = select_kl_cov_outliers(LOGP, ADV, cand, ratio=0.5)
    assert out.tolist() == [[True, True, False], [False, False, False]]
    assert not select_kl_cov_outliers(LOGP, ADV, torch.zeros(2, 3, dtype=torch.bool)).any()
    with pytest.raises(ValueError, match="ratio"):
        select_kl_cov_outliers(LOGP, ADV, cand, ratio=0.0)


def test_kl_cov_loss_matches_hand_computation():
    log_ratio = torch.tensor([[0.1, 0.0, 0.0], [0.0, 0.0, -0.2]])
    # outliers (ratio 0.34) are (0, 0) and (1, 2), see above; beta_KL = 1.
    # row 0: -e^0.1 + |0.1| = -1.005171, -1, -1;  row 1: 1, 1, e^-0.2 + |-0.2| = 1.018731
    # token mean: (-1.005171 - 2 + 2 + 1.018731) / 6 = 0.01356 / 6 = 0.002260
    loss, stats = compute_kl_cov_loss(LOGP, LOGP - log_ratio, ADV, torch.ones(2, 3), ratio=0.34)
    assert loss.item() == pytest.approx(0.002260, abs=1e-5)
    assert stats["n_outliers"] == 2.0
    # the penalty alone adds (0.1 + 0.2) / 6 = 0.05 to the unclipped token-mean loss
    base, _ = compute_unclipped_pg_loss(LOGP, LOGP - log_ratio, ADV, torch.ones(2, 3), agg="token")
    assert (loss - base).item() == pytest.approx(0.05, abs=1e-6)
    # certainty weights w = [1, .5, 1] per row: (-1.005171 - 0.5 - 1 + 1 + 0.5 + 1.018731) / 5 = 0.002712
    w = torch.tensor([[1.0, 0.5, 1.0], [1.0, 0.5, 1.0]])
    loss, _ = compute_kl_cov_loss(LOGP, LOGP - log_ratio, ADV, w, ratio=0.34)
    assert loss.item() == pytest.approx(0.002712, abs=1e-5)


def test_simpo_matches_hand_computation():
    chosen = torch.tensor([[-1.0, -2.0], [-0.5, -0.5]])
    chosen_w = torch.tensor([[1.0, 0.5], [1.0, 1.0]])
    rejected = torch.tensor([[-0.2, -0.4, -0.6], [-3.0, 0.0, 0.0]])
    rejected_w = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    # r'_c = (-1 - 1) / 1.5 = -1.33333, -1 / 2 = -0.5;  r'_r = -1.2 / 3 = -0.4, -3.0 / 1 = -3.0
    # margins -0.93333, 2.5; beta 2, gamma 1: z = -2.86667, 4.0
    # -log sigma(z) = log(1 + e^2.86667) = 2.92218, log(1 + e^-4) = 0.01815 -> mean 1.47017
    loss, stats = compute_simpo_loss(chosen, chosen_w, rejected, rejected_w, beta=2.0, gamma=1.0)
    assert loss.item() == pytest.approx(1.47017, abs=1e-4)
    assert stats == pytest.approx({"n_pairs": 2.0, "margin": 0.78333, "accuracy": 0.5}, abs=1e-4)


def test_simpo_edge_cases():
    empty = torch.zeros(0, 3, requires_grad=True)
    loss, stats = compute_simpo_loss(empty, torch.zeros(0, 3), torch.zeros(0, 2), torch.zeros(0, 2))
    loss.backward()
    assert loss.item() == 0.0 and stats["n_pairs"] == 0.0
    # a row with no weight has r' = 0 (not NaN): margin 0 - (-1) = 1, beta 1, gamma 0 -> log(1 + e^-1) = 0.31326
    loss, _ = compute_simpo_loss(torch.tensor([[-5.0]]), torch.zeros(1, 1), torch.tensor([[-1.0]]), torch.ones(1, 1),
                                 beta=1.0, gamma=0.0)
    assert loss.item() == pytest.approx(0.31326, abs=1e-5)


def test_k3_kl_matches_hand_computation():
    logp = torch.log(torch.tensor([[0.5, 0.5, 0.5]]))
    ref = torch.log(torch.tensor([[0.25, 1.0, 0.5]]))
    # ref - logp = -ln 2, ln 2, 0: e^-ln2 + ln2 - 1 = 0.193147;  2 - ln2 - 1 = 0.306853;  1 - 0 - 1 = 0
    assert torch.allclose(compute_k3_kl(logp, ref), torch.tensor([[0.193147, 0.306853, 0.0]]), atol=1e-6)
    # weights [1, 1, 0]: (0.193147 + 0.306853) / 2 = 0.25
    loss, stats = compute_k3_kl_loss(logp, ref, torch.tensor([[1.0, 1.0, 0.0]]))
    assert loss.item() == pytest.approx(0.25, abs=1e-6) and stats["kl"] == pytest.approx(0.25, abs=1e-6)
    loss, _ = compute_k3_kl_loss(logp, ref, torch.zeros(1, 3))
    assert loss.item() == 0.0
