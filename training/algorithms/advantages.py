"""Group advantage estimators (registry) and the zero-variance group filter.

Every estimator maps group rewards `[n_groups, group_size]` to advantages of the
same shape; one row holds the G rollouts of one prompt. Trainers look the
estimator up by name (`get_advantage(config.advantage)`), broadcast the per-
sequence advantage to tokens and hand it to a loss from `losses.py`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

ADVANTAGES: dict[str, Callable[..., torch.Tensor]] = {}


def register_advantage(name: str) -> Callable[[Callable[..., torch.Tensor]], Callable[..., torch.Tensor]]:
    def deco(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        ADVANTAGES[name] = fn
        return fn

    return deco


def get_advantage(name: str) -> Callable[..., torch.Tensor]:
    """The estimator registered as `name`; KeyError listing the known names otherwise."""
    if name not in ADVANTAGES:
        raise KeyError(f"unknown advantage estimator {name!r}; known: {sorted(ADVANTAGES)}")
    return ADVANTAGES[name]


@register_advantage("grpo")
def compute_grpo_advantage(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Group-normalised advantage (GRPO; riser.txt §2.3, Eq. 2; gream.txt §4, Eq. 10).

    rewards: [n_groups, group_size] -> advantages of the same shape.
    A_ij = (r_ij - mean_j r_ij) / (std_j r_ij + eps), std the sample (n-1) std as `torch.std`.
    A group whose rewards are all equal gets 0; group_size 1 has no spread and gets 0.
    """
    if rewards.shape[-1] < 2 or rewards.numel() == 0:
        return torch.zeros_like(rewards)
    mean = rewards.mean(dim=1, keepdim=True)
    std = rewards.std(dim=1, keepdim=True)
    return (rewards - mean) / (std + eps)


@register_advantage("rloo")
def compute_rloo_advantage(rewards: torch.Tensor) -> torch.Tensor:
    """REINFORCE leave-one-out advantage (RLOO; r2ec.txt §3.2, Eq. 2 — its body is lost in the text
    extraction, so the standard RLOO form of its reference [26] is used).

    rewards: [n_groups, group_size] -> advantages of the same shape.
    A_i = r_i - (sum_j r_j - r_i) / (G - 1)   (= G/(G-1) · (r_i - mean r)).
    group_size 1 has no other sample to form a baseline and gets 0.
    """
    group_size = rewards.shape[-1]
    if group_size < 2:
        return torch.zeros_like(rewards)
    others_mean = (rewards.sum(dim=1, keepdim=True) - rewards) / (group_size - 1)
    return rewards - others_mean


def compute_pass_at_k_bonus(success: torch.Tensor, k: int) -> torch.Tensor:
    """GREAM's rare-exact bonus advantage (gream.txt §5.2, Eq. 15, 16, 18-20).

    success: bool [n_groups, G] (v_i: exact hit) -> float [n_groups, G].
    With c = number of successes in the group:
      rho   = 1 - C(G-c, k) / C(G, k)              (Eq. 15, pass@k without replacement)
      sigma = sqrt(rho (1 - rho))                  (Eq. 16)
      success: (1 - rho) / sigma                   (Eq. 18)
      failure: ((1 - rho) - delta) / sigma,  delta = C(G-c-1, k-1) / C(G-1, k-1)   (Eq. 19, 20)
    sigma = 0 (c = 0, c = G, or k > G - c so rho = 1) gives bonus 0, which is also the limit of both
    expressions as rho -> 1. Eq. 19 is used as printed; its prose ("the probability that this sample is
    selected and ...") would carry an extra factor k/G, which the equation does not have.
    The table over c = 0..G is computed in float64 from exact `math.comb` integers, then indexed per group.
    """
    group_size = success.shape[-1]
    if not 1 <= k <= group_size:
        raise ValueError(f"srpo needs 1 <= k <= group_size, got k={k}, group_size={group_size}")
    pos, neg = [], []
    for c in range(group_size + 1):
        rho = 1.0 - math.comb(group_size - c, k) / math.comb(group_size, k)
        sigma = math.sqrt(max(rho * (1.0 - rho), 0.0))
        delta = math.comb(group_size - c - 1, k - 1) / math.comb(group_size - 1, k - 1) if c < group_size else 0.0
        pos.append((1.0 - rho) / sigma if sigma > 0 else 0.0)
        neg.append(((1.0 - rho) - delta) / sigma if sigma > 0 else 0.0)
    counts = success.sum(dim=1).long()
    pos_t = torch.tensor(pos, device=success.device)[counts].unsqueeze(1)
    neg_t = torch.tensor(neg, device=success.device)[counts].unsqueeze(1)
    return torch.where(success, pos_t, neg_t)


@register_advantage("srpo")
def compute_srpo_advantage(
    rewards: torch.Tensor,
    *,
    k: int,
    success: torch.Tensor | None = None,
    include_dense: bool = True,
    eps: float = 1e-6,
) -> torch.Tensor:
    """SRPO bonus-calibrated group advantage (GREAM; gream.txt §5.2, Eq. 17 and 21).

    rewards: [n_groups, G] float, the graded reward r^rs = (l/H)^beta of Eq. 14 (or a 0/1 hit reward);
    success: bool [n_groups, G] exact hits v_i; default `rewards >= 1` (r^rs = 1 iff l = H).
    -> advantages [n_groups, G]:
      A_i = A_i^rs + 1[v_i=1] (1-rho)/sigma + 1[v_i=0] ((1-rho)-delta)/sigma        (Eq. 21)
    where A^rs is the GRPO z-score of the graded rewards (Eq. 17) and the bonus is
    `compute_pass_at_k_bonus`. The graded reward enters only through A^rs; the bonus sees only
    exact hits. `include_dense=False` returns the bonus alone (the paper always adds A^rs, which
    keeps learning alive when sigma -> 0). k (the pass@k size) is not given in the paper: pass it.
    """
    if success is None:
        success = rewards >= 1.0
    bonus = compute_pass_at_k_bonus(success.bool(), k).to(rewards.dtype)
    if not include_dense:
        return bonus
    return compute_grpo_advantage(rewards, eps=eps) + bonus


def zero_variance_groups(rewards: torch.Tensor, atol: float = 0.0) -> torch.Tensor:
    """Groups whose rewards are all equal (gream.txt §5.3, Eq. 22 constraint std(r^rs) != 0).

    rewards: [n_groups, G] -> bool [n_groups]; True where max - min <= atol (G = 1 is always True).
    """
    if rewards.shape[0] == 0:
        return torch.zeros(0, dtype=torch.bool, device=rewards.device)
    spread = rewards.amax(dim=1) - rewards.amin(dim=1)
    return spread <= atol


class DroppedGroups(NamedTuple):
    rewards: torch.Tensor  # [n_kept, G]
    aligned: tuple[torch.Tensor, ...]  # each indexed by group on dim 0
    keep: torch.Tensor  # bool [n_groups]
    zero_variance_share: float  # dropped / n_groups (0.0 for no groups), for the logs


def drop_zero_variance(rewards: torch.Tensor, *aligned: torch.Tensor, atol: float = 0.0) -> DroppedGroups:
    """Variance-guided dynamic sampling: reject groups with zero reward variance (gream.txt §5.3).

    rewards: [n_groups, G]; aligned: tensors whose dim 0 is n_groups (token logprobs, masks, ...).
    Returns the kept rows of each, the keep mask and the share of dropped groups.
    """
    for t in aligned:
        if t.shape[0] != rewards.shape[0]:
            raise ValueError(f"aligned tensor has {t.shape[0]} groups, rewards have {rewards.shape[0]}")
    keep = ~zero_variance_groups(rewards, atol=atol)
    n_groups = rewards.shape[0]
    share = float((~keep).sum().item()) / n_groups if n_groups else 0.0
    return DroppedGroups(rewards[keep], tuple(t[keep] for t in aligned), keep, share)
