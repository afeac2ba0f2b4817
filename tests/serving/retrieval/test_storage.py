import json

import numpy as np
import pytest

from serving.retrieval import IndexSettings, ItemIndex
from serving.retrieval.storage import SIDECAR_FILE
from tests.serving.retrieval.conftest import mixture


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_save_load_round_trip_gives_identical_results(small_items, tmp_path, kind):
    ids, x = small_items
    index = ItemIndex.build(ids, x, IndexSettings(kind=kind, use_gpu="never", nprobe=4))
    index.remove_items(ids[:7])
    index.add_items(["cold1", "cold2"], mixture(2, 16, seed=8))
    index.save(tmp_path / "faiss")
    back = ItemIndex.load(tmp_path / "faiss")
    queries = mixture(5, 16, seed=6)
    exclude = [set(ids[7:20])] * 5
    assert back.search(queries, 15, exclude=exclude) == index.search(queries, 15, exclude=exclude)
    assert back.describe() == index.describe()
    assert back.item_ids == index.item_ids
    np.testing.assert_array_equal(back.vector("cold2"), index.vector("cold2"))
    back.add_items(["cold3"], x[:1])  # the id counter survives: no int is reused
    assert int(back._ids.ints_of(["cold3"])[0]) == index._ids.next_id


@pytest.mark.timeout(10)
def test_save_replaces_atomically_and_leaves_no_temp_dirs(small_items, tmp_path):
    ids, x = small_items
    ItemIndex.build(ids[:10], x[:10]).save(tmp_path / "faiss")
    ItemIndex.build(ids[:20], x[:20]).save(tmp_path / "faiss")
    assert len(ItemIndex.load(tmp_path / "faiss")) == 20
    assert [p.name for p in tmp_path.iterdir()] == ["faiss"]


@pytest.mark.timeout(10)
def test_load_refuses_missing_other_versions_and_mismatches(small_items, tmp_path):
    ids, x = small_items
    with pytest.raises(FileNotFoundError, match="no item index"):
        ItemIndex.load(tmp_path / "nothing")
    ItemIndex.build(ids[:10], x[:10]).save(tmp_path / "faiss")
    sidecar = tmp_path / "faiss" / SIDECAR_FILE
    doc = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**doc, "format_version": 99}))
    with pytest.raises(ValueError, match="format version 99"):
        ItemIndex.load(tmp_path / "faiss")
    sidecar.write_text(json.dumps({**doc, "ids": doc["ids"][:9], "ints": doc["ints"][:9]}))
    with pytest.raises(ValueError, match="does not match"):
        ItemIndex.load(tmp_path / "faiss")
