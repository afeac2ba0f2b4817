"""Ranking metrics for next-item recommendation (DESIGN.md §3).

Pure functions over raw item ids. One relevant item per sample (the target),
so HR@k and NDCG@k reduce to functions of the target's 0-based rank r:

    HR@k   = 1[r < k]
    NDCG@k = 1[r < k] / log2(r + 2)        (IDCG = 1 for a single relevant item)

A target that is missing from the list has r = None and scores 0.
"""

from __future__ import annotations

import math
from collections.abc import Container, Iterable, Sequence, Sized

import numpy as np

from training.catalog import id_sort_key

DEFAULT_KS: tuple[int, ...] = (5, 10, 20)
# The one list of metrics shown by the CLI, in reports and in benchmark rows (in this order).
REPORTED_METRICS: tuple[str, ...] = (
    "hr@5", "ndcg@5", "hr@10", "ndcg@10", "hr@20", "ndcg@20",
    "hr_tail@10", "ndcg_tail@10", "invalid_rate", "coverage@10", "coverage@20",
)  # fmt: skip


def rank_of_target(ranked: Sequence[str], target: str) -> int | None:
    """0-based position of the first occurrence of `target` in `ranked`, None when absent."""
    for i, item in enumerate(ranked):
        if item == target:
            return i
    return None


def hit_at_k(rank: int | None, k: int) -> float:
    """HR@k = 1 if rank is not None and rank < k else 0."""
    return 1.0 if rank is not None and rank < k else 0.0


def ndcg_at_k(rank: int | None, k: int) -> float:
    """NDCG@k = 1 / log2(rank + 2) if rank < k else 0 (single relevant item, IDCG = 1)."""
    return 1.0 / math.log2(rank + 2) if rank is not None and rank < k else 0.0


def per_sample_metrics(
    ranked_lists: Sequence[Sequence[str]], targets: Sequence[str], ks: Sequence[int] = DEFAULT_KS
) -> dict[str, np.ndarray]:
    """Per-sample HR@k and NDCG@k.

    ranked_lists: n lists of raw ids, best first; targets: n raw ids.
    Returns {"hr@k": float64[n], "ndcg@k": float64[n]} for every k in ks; the
    mean of an array is the usual metric, the arrays feed the paired bootstrap.
    """
    if len(ranked_lists) != len(targets):
        raise ValueError(f"{len(ranked_lists)} ranked lists for {len(targets)} targets")
    ranks = [rank_of_target(r, t) for r, t in zip(ranked_lists, targets, strict=True)]
    out: dict[str, np.ndarray] = {}
    for k in ks:
        out[f"hr@{k}"] = np.array([hit_at_k(r, k) for r in ranks], dtype=np.float64)
        out[f"ndcg@{k}"] = np.array([ndcg_at_k(r, k) for r in ranks], dtype=np.float64)
    return out


def coverage_at_k(
    ranked_lists: Iterable[Sequence[str]], k: int, n_catalog: int, catalog: Container[str] | None = None
) -> float:
    """Catalog coverage@k = |union over samples of the top-k ids| / n_catalog.

    catalog: when given, ids outside it are not counted (they are invalid
    outputs, measured by `invalid_rate`).
    """
    if n_catalog <= 0:
        raise ValueError("n_catalog must be positive")
    seen: set[str] = set()
    for ranked in ranked_lists:
        seen.update(ranked[:k])
    if catalog is not None:
        seen = {i for i in seen if i in catalog}
    return len(seen) / n_catalog


def invalid_rate(ranked_lists: Sequence[Sequence[str]], catalog: Container[str], k: int) -> float:
    """Share of the n * k' expected top-k slots that do not hold a valid, new catalog item.

    k' = min(k, len(catalog)) when the catalog is Sized (a list cannot be longer
    than the catalog), else k. Slot j of a list is invalid when the id is not in
    the catalog, repeats an id earlier in the same list, or is missing (the
    list is shorter than k'). Ids past slot k' are ignored.
    invalid_rate = (# invalid slots) / (n * k'); 0.0 for no lists.
    """
    k_eff = min(k, len(catalog)) if isinstance(catalog, Sized) else k
    if not ranked_lists or k_eff <= 0:
        return 0.0
    bad = 0
    for ranked in ranked_lists:
        head = list(ranked[:k_eff])
        bad += k_eff - len(head)
        seen: set[str] = set()
        for item in head:
            if item not in catalog or item in seen:
                bad += 1
            seen.add(item)
    return bad / (len(ranked_lists) * k_eff)


def head_items(train_item_counts: dict[str, int], head_share: float = 0.2) -> set[str]:
    """The popular "head": the top ceil(head_share * m) of the m items with a training count > 0.

    Items are ordered by training count, descending, ties broken by raw id
    (`id_sort_key`: numeric ids numerically), so the set is deterministic.
    """
    if not 0.0 <= head_share <= 1.0:
        raise ValueError("head_share must be in [0, 1]")
    seen = [(c, i) for i, c in train_item_counts.items() if c > 0]
    seen.sort(key=lambda ci: (-ci[0], id_sort_key(ci[1])))
    n_head = math.ceil(head_share * len(seen) - 1e-9)
    return {i for _, i in seen[:n_head]}


def long_tail_items(
    train_item_counts: dict[str, int], head_share: float = 0.2, catalog_ids: Iterable[str] | None = None
) -> set[str]:
    """Long-tail items = all items minus the head (`head_items`).

    Definition: the head is the top `head_share` (20 %) of the items that occur
    in training, by training count (ties by raw id); every other item is long
    tail, including items never seen in training. "All items" is `catalog_ids`
    when given, else the keys of `train_item_counts` (which then cannot hold
    never-seen items: to test a target use `target not in head_items(...)`).
    """
    head = head_items(train_item_counts, head_share)
    universe = set(catalog_ids) if catalog_ids is not None else set(train_item_counts)
    return universe - head
