import math

import numpy as np
import pytest

from training.catalog import Catalog
from training.data.types import ItemInfo
from training.identifiers.item_embeddings import (
    compute_cooccurrence_embeddings,
    count_cooccurrences,
    fuse_embeddings,
    ppmi_values,
)


@pytest.fixture
def catalog():
    return Catalog(ItemInfo(str(i), f"t{i}") for i in range(1, 6))


def test_counts_are_symmetric_within_window(catalog):
    pairs = count_cooccurrences({"u": ["1", "2", "3"]}, catalog, window=1)
    assert dict(pairs) == {(0, 1): 1, (1, 0): 1, (1, 2): 1, (2, 1): 1}


def test_ppmi_hand_computed(catalog):
    # counts: (1,2),(2,1),(2,3),(3,2) = 1 each; N = 4; marginals c1=1, c2=2, c3=1
    # PMI(1,2) = log(1 * 4 / (1 * 2)) = log 2, same for every pair
    rows, cols, values = ppmi_values(count_cooccurrences({"u": ["1", "2", "3"]}, catalog, 1), len(catalog))
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 1), (1, 0), (1, 2), (2, 1)]
    assert np.allclose(values, math.log(2))


def test_cooccurring_items_embed_closer_and_unseen_items_are_zero(catalog):
    sequences = {f"u{k}": ["1", "2"] * 3 + ["3", "4"] * 3 for k in range(5)}
    emb = compute_cooccurrence_embeddings(sequences, catalog, dim=3, window=1)
    assert emb.shape == (5, 3)
    assert np.allclose(emb[4], 0)
    assert np.allclose(np.linalg.norm(emb[:4], axis=1), 1, atol=1e-5)


def test_fuse_keeps_unit_norm_and_checks_weight():
    text = np.array([[1.0, 0.0]], dtype=np.float32)
    inter = np.array([[0.0, 1.0, 0.0]], dtype=np.float32)
    fused = fuse_embeddings(text, inter, 0.25)
    assert np.allclose(fused, [[math.sqrt(0.75), 0.0, 0.0, 0.5, 0.0]])
    assert np.isclose(np.linalg.norm(fused), 1.0)
    with pytest.raises(ValueError):
        fuse_embeddings(text, inter, 1.5)
