import faiss
import pytest

from serving.retrieval import IndexSettings, ItemIndex, factory
from tests.serving.retrieval.conftest import mixture


@pytest.fixture
def fake_gpu(monkeypatch):
    """Pretend faiss sees one GPU; the 'GPU copy' is a CPU clone, and counts its searches."""
    calls = {"clones": 0, "searches": 0}

    class Counting:
        def __init__(self, index):
            self.index = index

        def search(self, q, k, params=None):
            assert params is None, "GPU indexes take no search parameters"
            calls["searches"] += 1
            return self.index.search(q, k)

    def clone(index):
        calls["clones"] += 1
        return Counting(faiss.clone_index(index))

    monkeypatch.setattr(factory, "gpu_count", lambda: 1)
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", clone)
    return calls


@pytest.mark.timeout(10)
def test_gpu_choice_without_a_gpu():
    index = faiss.IndexFlatIP(4)
    assert factory.gpu_copy(index, "flat", "never") is None
    assert factory.gpu_copy(index, "flat", "auto") is None
    with pytest.raises(RuntimeError, match="use_gpu='always' but faiss sees no GPU"):
        factory.gpu_copy(index, "flat", "always")
    with pytest.raises(RuntimeError, match="no GPU"):
        ItemIndex.build(["a"], mixture(1, 4, seed=0), IndexSettings(use_gpu="always"))


@pytest.mark.timeout(10)
def test_gpu_choice_with_a_gpu(fake_gpu):
    index = faiss.IndexFlatIP(4)
    assert factory.gpu_copy(index, "flat", "auto") is not None
    assert factory.gpu_copy(index, "hnsw", "auto") is None
    with pytest.raises(RuntimeError, match="no GPU HNSW"):
        factory.gpu_copy(index, "hnsw", "always")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_gpu_copy_serves_searches_until_a_mutation_makes_it_stale(fake_gpu, small_items, kind):
    ids, x = small_items
    index = ItemIndex.build(ids, x, IndexSettings(kind=kind))
    query = mixture(2, 16, seed=1)
    cpu_twin = ItemIndex.build(ids, x, IndexSettings(kind=kind, use_gpu="never"))
    seen = [set(ids[:100]), set()]
    assert index.search(query, 10, exclude=seen) == cpu_twin.search(query, 10, exclude=seen)
    assert fake_gpu["searches"] == 1 and index.describe()["gpu"]
    index.add_items(["cold"], query[:1] * 5)
    assert index.describe()["gpu_stale"]
    assert index.search(query[:1], 1)[0][0][0] == "cold"  # answered by the CPU index
    assert fake_gpu["searches"] == 1
    index.sync_gpu()
    assert index.search(query[:1], 1)[0][0][0] == "cold" and fake_gpu["searches"] == 2
