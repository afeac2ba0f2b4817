"""Seeded, deterministic k-means in numpy (plain and balanced), the building block of RQ-KMeans.

Plain: k-means++ init, Lloyd iterations, empty clusters re-seeded with the
worst-fit points. Balanced: the assignment step is capacity-constrained (at
most ceil(n/k) points per cluster), done in rounds: each unassigned point
proposes to its nearest non-full cluster, and each cluster accepts its
closest proposers up to its remaining capacity (ties by point index).
"""

from __future__ import annotations

import numpy as np


def squared_distances(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """x: [n, d], c: [k, d] -> [n, k] squared Euclidean distances (clipped at 0)."""
    d = (x * x).sum(1)[:, None] - 2.0 * x @ c.T + (c * c).sum(1)[None, :]
    return np.maximum(d, 0.0)


def nearest(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid per point: [n] int64 (lowest index on ties)."""
    return squared_distances(x, c).argmin(axis=1).astype(np.int64)


def kmeans_pp_init(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007). x: [n, d] -> centroids [k, d]."""
    chosen = [int(rng.integers(len(x)))]
    d2 = squared_distances(x, x[chosen[-1]][None, :])[:, 0]
    for _ in range(1, k):
        total = d2.sum()
        if total > 0:
            nxt = int(rng.choice(len(x), p=d2 / total))
        else:  # all points coincide with chosen centroids: pick any unchosen point
            nxt = int(rng.choice(np.setdiff1d(np.arange(len(x)), chosen)))
        chosen.append(nxt)
        d2 = np.minimum(d2, squared_distances(x, x[nxt][None, :])[:, 0])
    return x[chosen].copy()


def assign_balanced(dist: np.ndarray, cap: int) -> np.ndarray:
    """Capacity-constrained assignment. dist: [n, k], cap * k >= n -> cluster per point [n] int64."""
    n, k = dist.shape
    if cap * k < n:
        raise ValueError(f"capacity {cap} x {k} clusters cannot hold {n} points")
    assign = np.full(n, -1, dtype=np.int64)
    room = np.full(k, cap, dtype=np.int64)
    while (todo := np.flatnonzero(assign < 0)).size:
        sub = np.where(room[None, :] > 0, dist[todo], np.inf)
        choice = sub.argmin(axis=1)
        chosen_dist = sub[np.arange(len(todo)), choice]
        order = np.lexsort((todo, chosen_dist, choice))  # by cluster, then distance, then index
        ranked = choice[order]
        starts = np.searchsorted(ranked, ranked, side="left")
        rank_in_cluster = np.arange(len(order)) - starts
        accept = order[rank_in_cluster < room[ranked]]
        assign[todo[accept]] = choice[accept]
        room -= np.bincount(choice[accept], minlength=k)
    return assign


def _update_centroids(x: np.ndarray, assign: np.ndarray, old: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Mean of each cluster; an empty cluster takes the point farthest from its own centroid."""
    k = len(old)
    sums = np.zeros_like(old)
    np.add.at(sums, assign, x)
    counts = np.bincount(assign, minlength=k)
    new = sums / np.maximum(counts, 1)[:, None]
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        fit = dist[np.arange(len(x)), assign]
        worst = np.argsort(-fit, kind="stable")[: empty.size]
        new[empty] = x[worst]
    return new


def kmeans(
    x: np.ndarray, k: int, seed: int = 0, n_iter: int = 25, balanced: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """x: [n, d] (n >= k) -> (centroids [k, d] float64, assignment [n] int64).

    The returned assignment is consistent with the returned centroids (nearest, or
    balanced with cap ceil(n/k)). Deterministic for a given seed.
    """
    x = np.asarray(x, dtype=np.float64)
    if not 1 <= k <= len(x):
        raise ValueError(f"k-means needs 1 <= k <= n, got k={k}, n={len(x)}")
    cap = -(-len(x) // k)
    centroids = kmeans_pp_init(x, k, np.random.default_rng(seed))
    assign = None
    for _ in range(n_iter):
        dist = squared_distances(x, centroids)
        new_assign = assign_balanced(dist, cap) if balanced else dist.argmin(axis=1)
        if assign is not None and np.array_equal(new_assign, assign):
            break
        assign = new_assign
        centroids = _update_centroids(x, assign, centroids, dist)
    dist = squared_distances(x, centroids)
    assign = assign_balanced(dist, cap) if balanced else dist.argmin(axis=1).astype(np.int64)
    return centroids, assign
