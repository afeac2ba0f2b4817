import math

import pytest
import torch

from training.algorithms.recpo import (
    build_in_batch_candidates,
    compute_in_batch_contrastive_loss,
    compute_in_batch_logprob,
    compute_recpo_rec_loss,
    select_best_trajectories,
)
from training.models.r2ec import compute_similarity


def test_in_batch_logprob_by_hand():
    scores = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    # log(e / (e + 1)) = -0.313262, log(1/2) = -0.693147
    out = compute_in_batch_logprob(scores, torch.tensor([0, 1]))
    assert torch.allclose(out, torch.tensor([-0.313262, -0.693147]), atol=1e-6)


def test_contrastive_loss_is_eq1_by_hand():
    scores = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    assert compute_in_batch_contrastive_loss(scores, torch.tensor([0, 1])).item() == pytest.approx(
        (0.313262 + 0.693147) / 2, abs=1e-6)


def test_in_batch_candidates_are_distinct_targets():
    candidates, labels = build_in_batch_candidates(torch.tensor([5, 2, 5, 9]))
    assert candidates.tolist() == [2, 5, 9] and labels.tolist() == [1, 0, 1, 2]


def test_best_trajectory_is_the_argmax_first_on_ties():
    adv = torch.tensor([[-1.0, 2.0, -1.0], [0.0, 0.0, 0.0]])
    assert select_best_trajectories(adv).tolist() == [[False, True, False], [True, False, False]]


def test_rec_loss_by_hand_and_only_the_best_trajectory_has_a_gradient():
    logprobs = torch.log(torch.tensor([[0.5, 0.2, 0.1], [0.3, 0.3, 0.3]])).requires_grad_()
    adv = torch.tensor([[-1.0, 2.0, -1.0], [0.5, -1.0, 0.5]])
    loss, stats = compute_recpo_rec_loss(logprobs, logprobs.detach(), adv)
    # ratio 1: per user -A_best; mean over the B = 2 chosen trajectories: (-2 - 0.5) / 2
    assert loss.item() == pytest.approx(-1.25)
    assert stats["best_advantage"] == pytest.approx(1.25)
    loss.backward()
    # d/dlogp of -A exp(logp - old) / B at ratio 1 = -A / B on the best trajectory, exactly 0 elsewhere
    assert torch.equal(logprobs.grad, torch.tensor([[0.0, -1.0, 0.0], [-0.25, 0.0, 0.0]]))


def test_rec_loss_clips_at_1_plus_eps_high():
    logprobs = torch.zeros(1, 2, requires_grad=True)
    old = torch.full((1, 2), -0.5)  # ratio e^0.5 = 1.6487 > 1.28
    loss, stats = compute_recpo_rec_loss(logprobs, old, torch.tensor([[2.0, -2.0]]), clip_low=0.2, clip_high=0.28)
    assert loss.item() == pytest.approx(-2.0 * 1.28)  # max(-2 * 1.6487, -2 * 1.28)
    assert stats["clip_fraction"] == 1.0
    loss.backward()
    assert torch.equal(logprobs.grad, torch.zeros(1, 2))  # the clipped branch carries no gradient


def test_gradient_rule_through_user_states_and_items():
    """B = 2 users x G = 3 trajectories: only the two best trajectories' user states receive a gradient."""
    torch.manual_seed(0)
    user = torch.randn(6, 8, requires_grad=True)  # [B*G, d]
    items = torch.randn(2, 8, requires_grad=True)  # the two in-batch targets
    logp = compute_in_batch_logprob(compute_similarity(user, items), torch.tensor([0, 0, 0, 1, 1, 1])).view(2, 3)
    adv = torch.tensor([[0.1, -0.5, 0.9], [1.0, 0.0, -1.0]])  # best: trajectory 2 of user 0, 0 of user 1
    loss, _ = compute_recpo_rec_loss(logp, logp.detach(), adv)
    loss.backward()
    has_grad = user.grad.abs().sum(dim=1) > 0
    assert has_grad.tolist() == [False, False, True, True, False, False]
    assert bool((items.grad.abs().sum(dim=1) > 0).all())


def test_shape_errors():
    with pytest.raises(ValueError, match=r"\[B, G\]"):
        compute_recpo_rec_loss(torch.zeros(3), torch.zeros(3), torch.zeros(3))
    assert math.isfinite(compute_recpo_rec_loss(torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1, 1))[0].item())
