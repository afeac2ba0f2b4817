import numpy as np

from training.baselines.pop import PopRecommender
from training.baselines.registry import load_baseline
from training.baselines.train import train_baseline
from training.catalog import Catalog
from training.data.split import SplitData
from training.data.types import ItemInfo, Sample


def _split(train_sequences: dict[str, list[str]]) -> SplitData:
    return SplitData("temporal", [], [], [], dict(train_sequences), dict(train_sequences))


def _catalog(ids: list[str]) -> Catalog:
    return Catalog(ItemInfo(i, f"title {i}") for i in ids)


def test_pop_ranks_by_training_count_hand_checked():
    catalog = _catalog(["1", "2", "3", "4", "5"])
    split = _split({"u1": ["3", "1", "3"], "u2": ["2", "3", "1"]})  # counts: 3->3, 1->2, 2->1, 4,5->0
    rec = train_baseline("pop", split, catalog)
    samples = [Sample("u1:3", "u1", ("3",), "2"), Sample("u9:1", "u9", (), "1")]
    assert rec.rank(samples, 5) == [["3", "1", "2", "4", "5"]] * 2
    assert rec.score_all(samples).shape == (2, 5)


def test_pop_breaks_ties_by_catalog_index():
    catalog = _catalog(["10", "9", "2", "7"])  # catalog index order: 2, 7, 9, 10
    split = _split({"u1": ["10", "9"], "u2": ["2"]})
    rec = PopRecommender.train(split, catalog)
    assert rec.rank([Sample("u1:2", "u1", ("10",), "9")], 4) == [["2", "9", "10", "7"]]


def test_pop_save_load_round_trip(tmp_path):
    catalog = _catalog(["1", "2", "3"])
    rec = PopRecommender.train(_split({"u1": ["2", "2", "3"]}), catalog)
    rec.save(tmp_path)
    samples = [Sample("u1:1", "u1", ("2",), "3")]
    for loaded in (PopRecommender.load(tmp_path, catalog), load_baseline(tmp_path, catalog)):
        assert loaded.name == "pop"
        np.testing.assert_array_equal(loaded.score_all(samples), rec.score_all(samples))
