"""RecPO's fused reward (r2ec.txt §4.2.2, Eq. 5): a discrete ranking term plus a continuous similarity term.

The text extraction lost the bodies of Eq. 5 and of the r_d / r_c definitions; the form and the constants
follow the authors' code (RRec `RecPOTrainer.compute_rec_score`): r = (1 − β)·NDCG@k + β·softmax, with
k = 1000 and β = 0.05, both computed from the rec head's scores of one trajectory over the full catalog.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from training.rewards.registry import register_reward

DEFAULT_NDCG_K = 1000  # RRec `reward_ndcg_k`
DEFAULT_SOFTMAX_WEIGHT = 0.05  # β, RRec `reward_softmax_weight` ("empirically set", §4.2.2)


def _masked_scores(scores: torch.Tensor, target: int, exclude: Sequence[int]) -> torch.Tensor:
    """scores [G, N] as float64 with the excluded columns at -inf; the target is never excluded."""
    out = torch.as_tensor(scores, dtype=torch.float64).clone()
    if out.ndim != 2:
        raise ValueError(f"scores must be [G, N], got {tuple(out.shape)}")
    if not 0 <= target < out.shape[1]:
        raise ValueError(f"target index {target} is outside the catalog of {out.shape[1]} items")
    drop = sorted({int(i) for i in exclude} - {target})
    if drop:
        out[:, drop] = -math.inf
    return out


def compute_target_ranks(scores: torch.Tensor, target: int, exclude: Sequence[int] = ()) -> list[int]:
    """0-based rank of the target in each row of scores [G, N] (every row a full-catalog ranking).

    rank = number of other non-excluded items scoring >= the target: ties count against it, so a collapsed
    scorer (all scores equal) earns the last place, as `rporec_ndcg` does. RRec breaks ties by `topk` order.
    """
    masked = _masked_scores(scores, target, exclude)
    own = masked[:, target : target + 1]
    return ((masked >= own).sum(dim=1) - 1).tolist()


def compute_target_softmax(scores: torch.Tensor, target: int, exclude: Sequence[int] = ()) -> list[float]:
    """r_c = softmax over the non-excluded catalog of each row of scores [G, N], read at the target (§4.2.2).

    The scores are the rec head's s(u, v) = <h_u, e_v>/τ (τ inside), so no temperature is applied here.
    """
    masked = _masked_scores(scores, target, exclude)
    return torch.softmax(masked, dim=1)[:, target].tolist()


@register_reward("recpo")
def compute_recpo_reward(
    scores: torch.Tensor,
    target: int,
    cutoff: int = DEFAULT_NDCG_K,
    softmax_weight: float = DEFAULT_SOFTMAX_WEIGHT,
    exclude: Sequence[int] = (),
) -> list[float]:
    """Fused RecPO reward of one group (r2ec.txt §4.2.2, Eq. 5; RRec code), one float per trajectory.

    scores: [G, N] rec-head scores of the G trajectories of one user over the catalog; target: catalog
    index of v+; exclude: catalog indices left out of the ranking (RRec masks the user's history).
      r_d = NDCG@k = 1/log2(rank + 2) if rank < k else 0      (one relevant item, IDCG = 1; rank 0-based)
      r_c = softmax(scores_i)[v+]
      r   = (1 − β)·r_d + β·r_c,  k = 1000, β = 0.05          (= 0.95·NDCG@1000 + 0.05·softmax)
    """
    if cutoff < 1:
        raise ValueError(f"cutoff must be >= 1, got {cutoff}")
    if not 0.0 <= softmax_weight <= 1.0:
        raise ValueError(f"softmax_weight must be in [0, 1], got {softmax_weight}")
    ranks = compute_target_ranks(scores, target, exclude)
    sims = compute_target_softmax(scores, target, exclude)
    ndcg = [1.0 / math.log2(rank + 2) if rank < cutoff else 0.0 for rank in ranks]
    return [(1.0 - softmax_weight) * d + softmax_weight * c for d, c in zip(ndcg, sims, strict=True)]
