"""Paired bootstrap over users for the difference of two models (DESIGN.md §3).

The temporal test set has few users with many samples each, so samples of one
user are not independent: we resample users, not samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def bootstrap_user_means(
    user_ids: Sequence[str], diff: np.ndarray, n_resamples: int = 1000, seed: int = 0
) -> np.ndarray:
    """Resampled means of a per-sample quantity, users drawn with replacement.

    user_ids: [n] user of each sample; diff: [n] per-sample value (e.g. a - b).
    With U distinct users, per-user sums S_u and counts C_u, each resample draws
    U users uniformly with replacement; W[b, u] = times user u was drawn
    (multinomial(U, 1/U)). Resample mean_b = sum_u W[b,u] S_u / sum_u W[b,u] C_u,
    i.e. the mean over all samples of the drawn users, a user drawn twice
    counting twice. Returns float64[n_resamples].
    """
    diff = np.asarray(diff, dtype=np.float64)
    if diff.ndim != 1 or len(user_ids) != diff.shape[0]:
        raise ValueError("user_ids and diff must be 1-D of the same length")
    if diff.size == 0:
        raise ValueError("no samples")
    _, inverse = np.unique(np.asarray(user_ids, dtype=object).astype(str), return_inverse=True)
    n_users = int(inverse.max()) + 1
    sums = np.bincount(inverse, weights=diff, minlength=n_users)
    counts = np.bincount(inverse, minlength=n_users).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n_users, np.full(n_users, 1.0 / n_users), size=n_resamples).astype(np.float64)
    return (draws @ sums) / (draws @ counts)


def paired_bootstrap_by_user(
    user_ids: Sequence[str],
    metric_a: np.ndarray,
    metric_b: np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, float]:
    """Mean difference a - b over samples with a (1 - alpha) percentile interval.

    metric_a, metric_b: [n] per-sample metrics of two models on the same
    samples (same order); user_ids: [n].
    mean_diff = mean_i (a_i - b_i); [lo, hi] = the alpha/2 and 1 - alpha/2
    percentiles of `bootstrap_user_means(user_ids, a - b)`.
    """
    a = np.asarray(metric_a, dtype=np.float64)
    b = np.asarray(metric_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"metric shapes differ: {a.shape} vs {b.shape}")
    diff = a - b
    means = bootstrap_user_means(user_ids, diff, n_resamples, seed)
    lo, hi = np.percentile(means, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return {"mean_diff": float(diff.mean()), "lo": float(lo), "hi": float(hi)}
