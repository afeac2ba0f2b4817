"""Seeded evaluation subsets (DESIGN.md §3): every model sees the same samples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from training.data.types import Sample


def select_subset(samples: Sequence[Sample], n: int = 5000, seed: int = 0) -> list[Sample]:
    """n samples drawn without replacement by `np.random.default_rng(seed)`, in their original order.

    Returns all samples (as a new list) when n <= 0 or n >= len(samples).
    Same samples, n and seed -> same subset.
    """
    if n <= 0 or n >= len(samples):
        return list(samples)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(samples), size=n, replace=False))
    return [samples[int(i)] for i in idx]
