"""Item embeddings for semantic ids: text, optionally fused with interaction signal.

Plain text embeddings give codes that explain little of what users do
(DESIGN.md §8). `compute_cooccurrence_embeddings` factorises a positive PMI
matrix of items that occur close together in training sequences (the
word2vec-as-matrix-factorisation view), and `fuse_embeddings` concatenates
the two L2-normalised parts with weights so that the RQ-KMeans codes share
structure between items users consume together.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from training.catalog import Catalog


def count_cooccurrences(
    sequences: Mapping[str, Sequence[str]], catalog: Catalog, window: int = 5
) -> Counter[tuple[int, int]]:
    """Symmetric counts of item pairs at most `window` positions apart in one user's sequence."""
    pairs: Counter[tuple[int, int]] = Counter()
    for seq in sequences.values():
        idx = [catalog.index_of(i) for i in seq if i in catalog]
        for pos, a in enumerate(idx):
            for b in idx[pos + 1: pos + 1 + window]:
                if a != b:
                    pairs[(a, b)] += 1
                    pairs[(b, a)] += 1
    return pairs


def ppmi_values(pairs: Counter[tuple[int, int]], n_items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positive PMI: max(0, log(c_ab * N / (c_a * c_b))) with N = sum of all counts.

    Returns (rows, cols, values) of the non-zero entries.
    """
    rows = np.array([a for a, _ in pairs], dtype=np.int64)
    cols = np.array([b for _, b in pairs], dtype=np.int64)
    counts = np.array(list(pairs.values()), dtype=np.float64)
    marginal = np.bincount(rows, weights=counts, minlength=n_items)
    pmi = np.log(counts * counts.sum() / (marginal[rows] * marginal[cols]))
    keep = pmi > 0
    return rows[keep], cols[keep], pmi[keep]


def compute_cooccurrence_embeddings(
    sequences: Mapping[str, Sequence[str]], catalog: Catalog, dim: int = 64, window: int = 5, seed: int = 0
) -> np.ndarray:
    """[len(catalog), dim] float32, L2-normalised; zero rows for items never seen in training."""
    n = len(catalog)
    rows, cols, values = ppmi_values(count_cooccurrences(sequences, catalog, window), n)
    if len(values) == 0:
        return np.zeros((n, dim), dtype=np.float32)
    matrix = torch.sparse_coo_tensor(np.stack([rows, cols]), values, (n, n), check_invariants=True).coalesce()
    torch.manual_seed(seed)
    u, s, _ = torch.svd_lowrank(matrix, q=min(dim, n - 1), niter=6)
    emb = (u * s.sqrt()).numpy().astype(np.float32)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    return np.divide(emb, norms, out=np.zeros_like(emb), where=norms > 0)


def fuse_embeddings(text: np.ndarray, interaction: np.ndarray, interaction_weight: float) -> np.ndarray:
    """concat(sqrt(1-w) * text, sqrt(w) * interaction): both rows unit-norm -> fused rows unit-norm."""
    if not 0.0 <= interaction_weight <= 1.0:
        raise ValueError(f"interaction_weight must be in [0, 1], got {interaction_weight}")
    return np.concatenate(
        [np.sqrt(1 - interaction_weight) * text, np.sqrt(interaction_weight) * interaction], axis=1
    ).astype(np.float32)
