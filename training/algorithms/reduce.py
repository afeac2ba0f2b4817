"""Token reductions and log statistics shared by the losses (pure, no registry).

`losses` [B, T] per-token values, `weights` [B, T] token mask x certainty weight (0 on padding).
"""

from __future__ import annotations

from typing import Literal

import torch

Aggregation = Literal["token", "sequence"]


def aggregate(losses: torch.Tensor, weights: torch.Tensor, mode: Aggregation = "token") -> torch.Tensor:
    """Reduce per-token losses [B, T] with weights [B, T] to a scalar.

    token:    sum_bt w_bt l_bt / sum_bt w_bt            (token-level mean, normaliser = sum of weights)
    sequence: mean_b [ sum_t w_bt l_bt / sum_t w_bt ]   (GRPO's 1/G sum_i 1/|o_i| sum_t; rows with no weight skipped)
    No weight at all gives 0 (still attached to the graph), never NaN.
    """
    contrib = torch.where(weights > 0, weights * losses, torch.zeros_like(losses))
    if mode == "token":
        total = weights.sum()
        return contrib.sum() / torch.where(total > 0, total, torch.ones_like(total))
    if mode == "sequence":
        row_w = weights.sum(dim=-1)
        live = row_w > 0
        row_mean = contrib.sum(dim=-1) / torch.where(live, row_w, torch.ones_like(row_w))
        return row_mean.sum() / live.sum().clamp_min(1)
    raise ValueError(f"unknown aggregation {mode!r}; use 'token' or 'sequence'")


def broadcast_advantages(advantages: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[B] or [B, 1] or [B, T] -> [B, T]."""
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(-1)
    return advantages.expand_as(like)


def share(flags: torch.Tensor, weights: torch.Tensor) -> float:
    """Fraction of live tokens (weight > 0) where `flags` holds; 0.0 when none are live."""
    live = weights > 0
    n = int(live.sum().item())
    return float((flags & live).sum().item()) / n if n else 0.0


def mean_live(values: torch.Tensor, weights: torch.Tensor) -> float:
    """Unweighted mean of `values` over live tokens (weight > 0); 0.0 when none are live."""
    live = weights > 0
    return float(values.detach()[live].mean().item()) if bool(live.any()) else 0.0


def ratio_stats(log_ratio: torch.Tensor, weights: torch.Tensor) -> dict[str, float]:
    """approx_kl: k3 estimate of KL(pi_old || pi_theta) = mean (r - 1 - log r) over live tokens."""
    log_ratio = log_ratio.detach()
    return {
        "approx_kl": mean_live(torch.expm1(log_ratio) - log_ratio, weights),
        "ratio_mean": mean_live(log_ratio.exp(), weights),
    }
