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


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    return 1.0 - float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture
def two_groups():
    """Items 1-3 are only ever consumed together, so are 4-6; item 7 never appears."""
    catalog = Catalog(ItemInfo(str(i), f"t{i}") for i in range(1, 8))
    sequences = {"a": ["1", "2", "3"] * 2, "b": ["4", "5", "6"] * 2, "c": ["3", "1", "2"], "d": ["6", "4", "5"]}
    return catalog, sequences


def test_cooccurring_items_embed_closer_than_items_that_never_cooccur(two_groups):
    catalog, sequences = two_groups
    # dim 2 keeps exactly the two group directions of the block-diagonal PPMI matrix
    emb = compute_cooccurrence_embeddings(sequences, catalog, dim=2, window=2)
    assert emb.shape == (7, 2)
    for a, b in [(0, 1), (0, 2), (3, 4), (4, 5)]:
        assert cosine_distance(emb[a], emb[b]) < 0.05
    for a, b in [(0, 3), (1, 4), (2, 5)]:
        assert cosine_distance(emb[a], emb[b]) > 0.95
    assert np.allclose(np.linalg.norm(emb[:6], axis=1), 1, atol=1e-5)
    assert np.allclose(emb[6], 0)


def test_fusion_lets_cooccurrence_outweigh_misleading_text(two_groups):
    catalog, sequences = two_groups
    text = np.eye(7, dtype=np.float32)
    text[3] = text[0]  # items 1 and 4 have the same text, items 1 and 2 unrelated text
    inter = compute_cooccurrence_embeddings(sequences, catalog, dim=2, window=2)
    assert cosine_distance(text[0], text[3]) < cosine_distance(text[0], text[1])
    fused = fuse_embeddings(text, inter, 0.75)
    # distance = 1 - 0.25 * cos_text - 0.75 * cos_interaction
    assert cosine_distance(fused[0], fused[1]) == pytest.approx(0.25, abs=0.02)
    assert cosine_distance(fused[0], fused[3]) == pytest.approx(0.75, abs=0.02)


def test_fuse_keeps_unit_norm_and_checks_weight():
    text = np.array([[1.0, 0.0]], dtype=np.float32)
    inter = np.array([[0.0, 1.0, 0.0]], dtype=np.float32)
    fused = fuse_embeddings(text, inter, 0.25)
    assert np.allclose(fused, [[math.sqrt(0.75), 0.0, 0.0, 0.5, 0.0]])
    assert np.isclose(np.linalg.norm(fused), 1.0)
    with pytest.raises(ValueError):
        fuse_embeddings(text, inter, 1.5)
