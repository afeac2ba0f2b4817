import numpy as np
import pytest

from serving.retrieval import IndexSettings, ItemIndex
from tests.serving.retrieval.conftest import brute_force, mixture

KINDS = ["flat", "hnsw", "ivf"]


def build(ids, vectors, kind: str, **options) -> ItemIndex:
    return ItemIndex.build(ids, vectors, IndexSettings(kind=kind, use_gpu="never", **options))


@pytest.mark.timeout(30)
def test_flat_search_matches_numpy_brute_force(small_items):
    ids, x = small_items
    index = build(ids, x, "flat")
    queries = mixture(6, 16, seed=9) * 3.0  # unnormalised users, as the Rechead makes them
    for query, row in zip(queries, index.search(queries, 10), strict=True):
        expected = brute_force(x, ids, query, 10)
        assert [i for i, _ in row] == [i for i, _ in expected]
        np.testing.assert_allclose([s for _, s in row], [s for _, s in expected], rtol=1e-5)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_kinds_recall_at_10(big_items, kind):
    ids, x = big_items
    index = build(ids, x, kind)
    queries = mixture(50, 32, seed=7)
    found = index.search(queries, 10)
    recall = np.mean([len({i for i, _ in row} & {i for i, _ in brute_force(x, ids, q, 10)}) / 10
                      for q, row in zip(queries, found, strict=True)])
    assert recall >= 0.9, f"{kind} recall@10 {recall:.3f}"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", KINDS)
def test_excluded_items_never_come_back_and_rows_stay_full(small_items, kind):
    ids, x = small_items
    index = build(ids, x, kind)
    queries = mixture(4, 16, seed=5)
    first = index.search(queries, 20)
    seen = [{i for i, _ in row[:10]} | {"not-an-item"} for row in first[:2]] + [set(), set()]
    again = index.search(queries, 20, exclude=seen)
    for row, excluded in zip(again, seen, strict=True):
        assert len(row) == 20 and len({i for i, _ in row}) == 20
        assert not {i for i, _ in row} & excluded
        assert [s for _, s in row] == sorted((s for _, s in row), reverse=True)
    assert again[2:] == first[2:]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", KINDS)
def test_rows_are_short_only_when_few_items_are_eligible(small_items, kind):
    ids, x = small_items
    index = build(ids, x, kind, nprobe=1)
    keep = set(ids[::50])  # 10 items spread over the index
    query = mixture(1, 16, seed=3)
    rows = index.search(query, 20, exclude=[set(ids) - keep])
    assert {i for i, _ in rows[0]} == keep
    exact = brute_force(x, ids, query[0], 5, exclude=set(ids) - keep)
    row = index.search(query, 5, exclude=[set(ids) - keep])[0]
    assert [i for i, _ in row] == [i for i, _ in exact]
    np.testing.assert_allclose([s for _, s in row], [s for _, s in exact], rtol=1e-5)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", KINDS)
def test_add_and_remove_without_rebuild(small_items, kind):
    ids, x = small_items
    index = build(ids, x, kind)
    query = mixture(1, 16, seed=11)
    top = [i for i, _ in index.search(query, 10)[0]]
    index.remove_items(top[:5])
    new_vector = query[0] * 5
    index.add_items(["cold"], new_vector[None, :])
    row = index.search(query, 10)[0]
    assert not {i for i, _ in row} & set(top[:5])
    assert row[0][0] == "cold"
    assert row[0][1] == pytest.approx(float(query[0] @ new_vector), rel=1e-5)
    assert len(index) == len(ids) - 5 + 1
    assert "cold" in index and top[0] not in index
    np.testing.assert_allclose(index.vector("cold"), new_vector, rtol=1e-6)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", KINDS)
def test_removed_then_re_added_id_gets_a_fresh_int_and_its_new_vector(small_items, kind):
    ids, x = small_items
    index = build(ids, x, kind)
    old_int = int(index._ids.ints_of(["item3"])[0])
    index.remove_items(["item3"])
    index.add_items(["item3"], -x[3:4])
    assert int(index._ids.ints_of(["item3"])[0]) > old_int
    scores = dict(index.search(-x[3:4], 500)[0])
    assert scores["item3"] == pytest.approx(1.0, rel=1e-5)
    assert index.item_ids[-1] == "item3"


@pytest.mark.timeout(30)
def test_hnsw_removal_is_a_tombstone_and_rebuilt_drops_it(small_items):
    ids, x = small_items
    index = build(ids, x, "hnsw")
    index.remove_items(ids[:30])
    info = index.describe()
    assert info["removal"] == "tombstone" and info["tombstones"] == 30
    assert info["n_items"] == 470 and info["ntotal"] == 500
    fresh = index.rebuilt()
    assert fresh.describe()["tombstones"] == 0 and len(fresh) == 470
    query = mixture(3, 16, seed=4)
    assert [[i for i, _ in r] for r in fresh.search(query, 5)] == [[i for i, _ in r] for r in index.search(query, 5)]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", KINDS)
def test_bad_input_is_refused_and_changes_nothing(small_items, kind):
    ids, x = small_items
    index = build(ids, x, kind)
    with pytest.raises(ValueError, match="'item1'"):
        index.add_items(["fresh", "item1"], x[:2])
    with pytest.raises(ValueError, match="'dup'"):
        index.add_items(["dup", "dup"], x[:2])
    with pytest.raises(ValueError, match=r"\[1, 16\]"):
        index.add_items(["fresh"], np.ones((1, 8), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        index.add_items(["fresh"], np.full((1, 16), np.nan, np.float32))
    with pytest.raises(KeyError, match="'nope'"):
        index.remove_items(["item2", "nope"])
    with pytest.raises(TypeError):
        index.remove_items("item2")
    assert len(index) == 500 and "fresh" not in index and "item2" in index
    with pytest.raises(KeyError, match="'nope'"):
        index.vector("nope")


@pytest.mark.timeout(10)
def test_search_argument_errors(small_items):
    ids, x = small_items
    index = build(ids, x, "flat")
    with pytest.raises(ValueError, match=r"\[B, 16\]"):
        index.search(np.ones((2, 3), np.float32), 5)
    with pytest.raises(ValueError, match="k must be"):
        index.search(x[:1], 0)
    with pytest.raises(ValueError, match="exclude has 1 rows"):
        index.search(x[:2], 5, exclude=[set()])
    with pytest.raises(TypeError, match="not one string"):
        index.search(x[:1], 5, exclude=["item1"])
    assert len(index.search(x[0], 3)) == 1  # a single [d] vector is one user
    assert index.search(np.zeros((0, 16), np.float32), 3) == []


@pytest.mark.timeout(10)
def test_auto_kind_empty_index_and_describe():
    x = mixture(300, 8, seed=0)
    ids = [str(i) for i in range(300)]
    index = ItemIndex.build(ids, x, IndexSettings(auto_threshold=100))
    info = index.describe()
    assert info["kind"] == "ivf" and info["nlist"] == 7 and info["nprobe"] == 64 and info["metric"] == "inner_product"
    assert ItemIndex.build(ids[:50], x[:50], IndexSettings(auto_threshold=100)).kind == "flat"
    empty = ItemIndex.build([], np.zeros((0, 8), np.float32))
    assert empty.kind == "flat" and len(empty) == 0 and empty.search(x[:2], 5) == [[], []]
    empty.add_items(["a"], x[:1])
    assert [i for i, _ in empty.search(x[:1], 5)[0]] == ["a"]
    with pytest.raises(ValueError, match="IVF index needs vectors"):
        ItemIndex.build([], np.zeros((0, 8), np.float32), IndexSettings(kind="ivf"))
