"""Tiny clustered item/query vectors for the retrieval tests (normalised Gaussian mixture)."""

from __future__ import annotations

import numpy as np
import pytest


def mixture(n: int, dim: int, seed: int, n_centres: int = 16, noise: float = 1.0) -> np.ndarray:
    """n unit vectors [n, dim] around n_centres unit centres (fixed by seed 0), draws by `seed`."""
    centres = np.random.default_rng(0).standard_normal((n_centres, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rng = np.random.default_rng(seed + 1)
    x = centres[rng.integers(0, n_centres, n)] + rng.standard_normal((n, dim)).astype(np.float32) * noise / dim**0.5
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def brute_force(items: np.ndarray, ids: list[str], query: np.ndarray, k: int,
                exclude: set[str] = frozenset()) -> list[tuple[str, float]]:
    """Exact top-k (id, score) by inner product with numpy, skipping `exclude`."""
    scores = items @ query
    order = [i for i in np.argsort(-scores, kind="stable") if ids[i] not in exclude][:k]
    return [(ids[i], float(scores[i])) for i in order]


@pytest.fixture(scope="module")
def small_items() -> tuple[list[str], np.ndarray]:
    """500 items, d=16."""
    return [f"item{i}" for i in range(500)], mixture(500, 16, seed=1)


@pytest.fixture(scope="module")
def big_items() -> tuple[list[str], np.ndarray]:
    """5,000 items, d=32 (for recall of the approximate kinds)."""
    return [f"item{i}" for i in range(5000)], mixture(5000, 32, seed=2)


@pytest.fixture(autouse=True)
def one_faiss_thread():
    """faiss on one thread (the machine is shared; OpenMP on busy cores is slower, not faster)."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)
