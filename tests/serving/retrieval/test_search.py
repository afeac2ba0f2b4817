import numpy as np
import pytest

from serving.retrieval import IndexSettings, ItemIndex
from serving.retrieval.search import keep
from tests.serving.retrieval.conftest import brute_force, mixture


@pytest.mark.timeout(10)
def test_keep_skips_missing_hidden_and_repeated_ids():
    scores = np.array([9.0, 8.0, 7.0, 6.0, 5.0, 4.0])
    labels = np.array([3, -1, 4, 3, 5, 6])
    assert keep(scores, labels, {4}, 2) == [(3, 9.0), (5, 5.0)]
    assert keep(scores, labels, set(), 10) == [(3, 9.0), (4, 7.0), (5, 5.0), (6, 4.0)]
    assert keep(scores, labels, set(), 0) == []


@pytest.mark.timeout(30)
def test_ivf_with_one_probe_widens_until_it_finds_the_eligible_items():
    x = mixture(2000, 16, seed=3)
    ids = [str(i) for i in range(2000)]
    index = ItemIndex.build(ids, x, IndexSettings(kind="ivf", nlist=32, nprobe=1, use_gpu="never"))
    hidden = set(ids) - set(ids[::200])
    query = mixture(1, 16, seed=4)
    row = index.search(query, 10, exclude=[hidden])[0]
    assert row == [(i, pytest.approx(s, rel=1e-5)) for i, s in brute_force(x, ids, query[0], 10, hidden)]


@pytest.mark.timeout(30)
def test_hnsw_tombstones_and_exclusions_still_leave_k_results():
    x = mixture(1000, 16, seed=5)
    ids = [str(i) for i in range(1000)]
    index = ItemIndex.build(ids, x, IndexSettings(kind="hnsw", ef_search=16, use_gpu="never"))
    index.remove_items(ids[:900])
    query = mixture(3, 16, seed=6)
    rows = index.search(query, 50, exclude=[set(ids[900:950])] * 3)
    assert all({i for i, _ in row} == set(ids[950:]) for row in rows)
