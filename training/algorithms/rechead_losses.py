"""Stage-I losses of the Rechead (rporec.txt §2.1.2, Eq. 6) and their negative sampler, pure.

Not in the `losses` registry: those are token-level policy losses `(logprobs, ..., weights) -> (loss, stats)`;
these score users against items. The trainer picks one by `RecheadTrainConfig.loss`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sample_negatives(
    targets: torch.Tensor, n_items: int, k: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """k negatives per row, uniform over the catalog without the row's target (N^k_uv of Eq. 6).

    targets: long [B] item indices in [0, n_items) -> long [B, k]. Draws from n_items - 1 slots and
    shifts those at or above the target up by one, so the target is never drawn and every other item
    has probability 1 / (n_items - 1). Rows are drawn with replacement (a negative may repeat, as in
    the usual sampled softmax); seeded by `generator` (on the targets' device).
    """
    if n_items < 2:
        raise ValueError(f"sampling negatives needs at least 2 items, got {n_items}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    draws = torch.randint(0, n_items - 1, (targets.shape[0], k), generator=generator, device=targets.device)
    return draws + (draws >= targets.unsqueeze(-1)).long()


def build_candidates(targets: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """{v+} ∪ N^k_uv as indices, the positive in column 0: targets [B], negatives [B, k] -> [B, 1 + k]."""
    return torch.cat([targets.unsqueeze(-1), negatives], dim=-1)


def compute_sampled_ce_loss(candidate_scores: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """CE over the positive and k sampled negatives (Eq. 6), mean over the batch.

    candidate_scores: [B, 1 + k], s(u, v+) in column 0 -> scalar.
    L = −log( exp(s(u, v+)/τ) / Σ_{v ∈ {v+} ∪ N} exp(s(u, v)/τ) ); τ = 1 is Eq. 6, other τ the
    contrastive form of Eq. 13.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return -F.log_softmax(candidate_scores / temperature, dim=-1)[:, 0].mean()


def compute_full_softmax_ce_loss(
    all_scores: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """CE over the whole catalog (Eq. 6 with every other item as a negative), mean over the batch.

    all_scores: [B, N]; targets: long [B] -> scalar. Exact but O(B·N); the paper samples instead
    ("exhaustive scoring is expensive during training", §2.1.2). Fine for ML-100k's 1,682 items.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return F.cross_entropy(all_scores / temperature, targets)
