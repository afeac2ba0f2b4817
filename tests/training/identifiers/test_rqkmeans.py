import numpy as np
import pytest

from training.catalog import Catalog
from training.data.types import ItemInfo
from training.identifiers.base import build_scheme, load_scheme
from training.identifiers.rqkmeans import (
    SemanticIdScheme,
    collision_rate,
    default_codebook,
    disambiguate,
    fit_residual_kmeans,
    residual_norms,
    sid_code,
    sid_token,
)
from training.identifiers.trie import ItemTrie

CENTERS = np.array([[10.0, 0.0], [0.0, 10.0], [-10.0, -10.0]])


def planted() -> np.ndarray:
    """6 items: 3 far-apart centres, each +-(1, 0). Rows: c0+, c0-, c1+, c1-, c2+, c2-."""
    offsets = np.array([[1.0, 0.0], [-1.0, 0.0]])
    return (CENTERS[:, None, :] + offsets[None, :, :]).reshape(6, 2)


def hand_scheme() -> SemanticIdScheme:
    """Level 0 centroids (0,0),(10,0); level 1 (0,0),(0,1); items a, b share prefix (1, 0)."""
    centroids = [np.array([[0.0, 0.0], [10.0, 0.0]]), np.array([[0.0, 0.0], [0.0, 1.0]])]
    codes = np.array([[1, 0, 0], [1, 0, 1], [0, 1, 0]])
    return SemanticIdScheme(["a", "b", "c"], codes, centroids, [2, 2, 2])


def test_residual_kmeans_on_planted_clusters():
    codes, centroids = fit_residual_kmeans(planted(), n_levels=2, n_codes=[3, 2], seed=0)
    assert codes.shape == (6, 2) and [c.shape for c in centroids] == [(3, 2), (2, 2)]
    level0 = codes[:, 0].reshape(3, 2)
    assert (level0[:, 0] == level0[:, 1]).all() and len(set(level0[:, 0])) == 3
    assert len(set(codes[0::2, 1])) == 1 and len(set(codes[1::2, 1])) == 1  # +1 offsets share a code
    assert codes[0, 1] != codes[1, 1]
    assert collision_rate(codes) == 0.0
    norms = residual_norms(planted(), codes, centroids)
    assert norms[1] == pytest.approx(1.0) and norms[2] == pytest.approx(0.0, abs=1e-6)


def test_fit_is_deterministic_per_seed():
    x = np.random.default_rng(3).normal(size=(40, 8))
    a_codes, a_cent = fit_residual_kmeans(x, 3, 4, seed=5)
    b_codes, b_cent = fit_residual_kmeans(x, 3, 4, seed=5)
    assert np.array_equal(a_codes, b_codes)
    assert all(np.array_equal(a, b) for a, b in zip(a_cent, b_cent, strict=True))


def test_balanced_levels_respect_the_cap():
    x = np.random.default_rng(0).normal(size=(50, 4)) ** 3  # skewed
    codes, _ = fit_residual_kmeans(x, 2, 4, seed=0, balanced=True)
    for level in range(2):
        assert np.bincount(codes[:, level]).max() <= 13  # ceil(50 / 4)


def test_disambiguate_by_hand():
    codes = np.array([[0, 1], [0, 1], [2, 3], [0, 1], [2, 2]])
    full = disambiguate(codes)
    assert full[:, 2].tolist() == [0, 1, 0, 2, 0]
    assert np.array_equal(full[:, :2], codes)
    assert len({tuple(r) for r in full.tolist()}) == 5


def test_collision_rate_by_hand():
    assert collision_rate(np.array([[0, 1], [0, 1], [1, 0], [1, 1], [2, 0]])) == pytest.approx(0.4)
    assert collision_rate(np.zeros((0, 2), dtype=int)) == 0.0


def test_default_codebook():
    assert default_codebook(1682) == (3, 32)
    assert default_codebook(5) == (3, 4)
    assert default_codebook(10**7) == (4, 128)  # 2 * ceil(10^(7/4)) = 114 -> 128
    assert default_codebook(10**9) == (4, 256)  # capped


def test_tokens_and_new_tokens_by_hand():
    scheme = hand_scheme()
    assert scheme.depth == 3 and scheme.n_levels == 2
    assert scheme.item_tokens("b") == ("<s0_1>", "<s1_0>", "<s2_1>")
    assert sid_token(3, 0) == "<s3_0>" and sid_code(sid_token(3, 12)) == 12
    assert scheme.item_for_tokens(("<s0_1>", "<s1_0>", "<s2_1>")) == "b"
    assert scheme.new_tokens() == ["<s0_0>", "<s0_1>", "<s1_0>", "<s1_1>", "<s2_0>", "<s2_1>"]
    stats = scheme.stats()
    assert stats["collision_rate_before_disambiguation"] == pytest.approx(2 / 3)
    assert stats["max_cluster_size"] == 2 and stats["codebook_sizes"] == [2, 2, 2]


def test_add_item_takes_nearest_codes_and_next_free_disambiguation():
    scheme = hand_scheme()
    scheme.add_item("d", embedding=np.array([10.0, 0.1]))  # -> (1, 0), prefix taken by a, b
    assert scheme.codes_of("d") == (1, 0, 2)
    assert scheme.codebook_sizes[-1] == 3 and scheme.new_tokens()[-1] == "<s2_2>"
    scheme.remove_item("a")
    scheme.add_item("e", embedding=np.array([9.0, 1.2]))  # level 0 -> 1; residual (-1, 1.2) -> 1
    assert scheme.codes_of("e") == (1, 1, 0)
    scheme.add_item("f", embedding=np.array([10.0, 0.0]))  # reuses a's freed code
    assert scheme.codes_of("f") == (1, 0, 0)
    with pytest.raises(ValueError):
        scheme.add_item("f", embedding=np.zeros(2))
    with pytest.raises(ValueError, match="embedding"):
        scheme.add_item("g")


def test_shared_codes_and_repeated_items_are_refused():
    centroids = [np.zeros((1, 2))]
    with pytest.raises(ValueError, match="taken by item 'a'"):
        SemanticIdScheme(["a", "b"], np.array([[0, 0], [0, 0]]), centroids, [1, 1])
    scheme = SemanticIdScheme(["a"], np.array([[0, 0]]), centroids, [1, 1])
    with pytest.raises(ValueError, match="already has"):
        scheme.add_item("a", embedding=np.zeros(2))
    assert scheme.codebook_sizes == [1, 1]  # the refused item did not grow the codebook


def test_build_from_catalog_gives_unique_ids_and_round_trips(tmp_path):
    catalog = Catalog([ItemInfo(str(i), f"t{i}") for i in range(12)])
    emb = np.random.default_rng(0).normal(size=(12, 6)).astype(np.float32)
    scheme = build_scheme("sid", catalog, emb, n_levels=2, n_codes=2, seed=1)
    assert len({scheme.item_tokens(i) for i in catalog.item_ids}) == 12
    assert len(set(scheme.new_tokens())) == len(scheme.new_tokens())
    stats = scheme.stats()
    assert stats["codebook_sizes"][-1] == stats["max_cluster_size"]
    assert len(stats["residual_norms"]) == 3
    scheme.save(tmp_path)
    loaded = load_scheme(tmp_path)
    assert isinstance(loaded, SemanticIdScheme)
    assert loaded.mapping() == scheme.mapping() and loaded.stats() == stats
    loaded.add_item("new", embedding=emb[0])
    assert loaded.codes_of("new")[:2] == scheme.codes_of("0")[:2]


def test_tokens_build_a_trie_that_maps_back_to_items():
    scheme = SemanticIdScheme.fit([f"i{k}" for k in range(6)], planted(), n_levels=1, n_codes=3)
    vocab = {tok: i for i, tok in enumerate(scheme.new_tokens())}
    trie = ItemTrie.build({i: [vocab[t] for t in scheme.item_tokens(i)] for i in scheme.item_ids})
    assert len(trie.allowed_next([])) == 3
    for item_id in scheme.item_ids:
        assert trie.item_at([vocab[t] for t in scheme.item_tokens(item_id)]) == item_id


def test_bad_embeddings_are_refused():
    catalog = Catalog([ItemInfo("1", "a"), ItemInfo("2", "b")])
    with pytest.raises(ValueError, match="embeddings"):
        build_scheme("sid", catalog)
    with pytest.raises(ValueError, match="do not match"):
        build_scheme("sid", catalog, np.zeros((3, 4)))
