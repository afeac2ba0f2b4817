"""Rank-based NDCG reward over a group ranked by log-probability (DESIGN.md §5 "rank-NDCG").

No paper in /work/shared/papers defines a ranking reward: RISER trains on the binary hit
(riser.txt §2.3) and only mentions NDCG-scaled rewards of Rec-R1 (riser.txt §5); evaluation
everywhere is NDCG@K of a ranked list (riser.txt §4.1.3). This reward is that metric, applied
to the list the group itself forms, with credit split per item by counterfactual removal (the
same counterfactual idea as GREAM's per-sample bonus, gream.txt §5.2, Eq. 19-20).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from training.rewards.registry import register_reward


def _ndcg_single_target(rank: int | None, k: int | None) -> float:
    """NDCG of one relevant item at 0-based `rank` (None: absent); IDCG = 1, so 1/log2(rank+2)."""
    if rank is None or (k is not None and rank >= k):
        return 0.0
    return 1.0 / math.log2(rank + 2)


def rank_items_by_logprob(items: Sequence[str], logprobs: Sequence[float]) -> list[str]:
    """Distinct items, best first: score = max log-prob of the item's samples; ties keep first appearance."""
    best: dict[str, float] = {}
    for item, lp in zip(items, logprobs, strict=True):
        best[item] = max(lp, best.get(item, -math.inf))
    return sorted(best, key=lambda item: -best[item])  # sorted() is stable: ties keep first appearance


@register_reward("rank_ndcg")
def compute_rank_ndcg_reward(
    items: Sequence[str], logprobs: Sequence[float], target: str, k: int | None = None
) -> list[float]:
    """Per-sample share of the group's NDCG: r_i = NDCG@k(L) - NDCG@k(L without o_i).

    L = the group's distinct items sorted by sequence log-prob, descending (what a beam list of
    the same items would show). With one relevant item, NDCG@k(L) = 1/log2(r+2) where r is the
    target's 0-based rank in L (0 if absent or r >= k). Removing an item gives, per sample i:
      - o_i = target at rank r:            r_i = 1/log2(r+2)                 (a hit, scaled by its rank)
      - o_i ranked above the target:       r_i = 1/log2(r+2) - 1/log2(r+1)   (< 0: it pushes the target down)
      - o_i ranked below it, or no target: r_i = 0
    (with the cut-off k each term is 0 when its rank is >= k, so items above a target just outside
    the top k get -1/log2(k+1)). Denser than `hit`: misses that outrank the target are told apart
    from harmless ones, and a hit earns more the higher the policy ranks it. Samples of the same
    item share its credit.

    items: G raw item ids; logprobs: G sequence log-probs log pi(o_i|x); target: raw id;
    k: optional cut-off (NDCG@k), None = the whole list. Returns G floats.
    """
    if len(items) != len(logprobs):
        raise ValueError(f"{len(items)} items but {len(logprobs)} log-probs")
    if k is not None and k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    ranked = rank_items_by_logprob(items, logprobs)
    if target not in ranked:
        return [0.0] * len(items)
    r = ranked.index(target)
    full = _ndcg_single_target(r, k)
    credit = {item: full - _ndcg_single_target(r - 1, k) for item in ranked[:r]}
    credit[target] = full  # removing the target leaves NDCG 0
    return [credit.get(item, 0.0) for item in items]
