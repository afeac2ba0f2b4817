import json
import math

import numpy as np
import pytest

from training.catalog import Catalog
from training.data.types import ItemInfo, Sample
from training.eval.evaluator import evaluate, load_predictions, metrics_from_predictions
from training.eval.subset import select_subset
from training.recommender import ScoringRecommender

# Catalog "1".."6"; the fake always ranks 6, 5, 4, 3, 2, 1.
CATALOG = Catalog(ItemInfo(str(i), f"Movie {i}") for i in range(1, 7))
# 5 items occur in training -> head = ceil(0.2 * 5) = 1 item = {"6"}
TRAIN_COUNTS = {"6": 5, "5": 3, "4": 2, "1": 1, "2": 1}
SAMPLES = [
    Sample("a:1", "a", ("1",), "6"),  # rank 0, head target
    Sample("a:2", "a", ("1", "6"), "4"),  # rank 2, tail
    Sample("b:1", "b", ("2",), "1"),  # rank 5, tail
]


class ByIdScore(ScoringRecommender):
    name = "by_id"

    def __init__(self, catalog):
        self.catalog = catalog

    def score_all(self, samples):
        ids = np.array([float(i) for i in self.catalog.item_ids])
        return np.tile(ids, (len(samples), 1))


def _run(tmp_path, **kw):
    return evaluate(
        ByIdScore(CATALOG),
        SAMPLES,
        catalog=CATALOG,
        train_item_counts=TRAIN_COUNTS,
        out_dir=tmp_path / "run",
        ks=(1, 3),
        batch_size=2,
        progress=False,
        **kw,
    )


def test_metrics_match_hand_computation(tmp_path):
    m = _run(tmp_path, subset_note="all 3")
    assert m["hr@1"] == pytest.approx(1 / 3)
    assert m["hr@3"] == pytest.approx(2 / 3)
    assert m["ndcg@3"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert m["n_tail_samples"] == 2
    assert m["hr_tail@3"] == pytest.approx(0.5)
    assert m["ndcg_tail@3"] == pytest.approx(0.25)
    assert m["hr_tail@1"] == 0.0
    assert m["coverage@1"] == pytest.approx(1 / 6)
    assert m["coverage@3"] == pytest.approx(3 / 6)
    assert m["invalid_rate"] == 0.0
    assert m["n_samples"] == 3 and m["filter_seen"] is False and m["subset_note"] == "all 3"
    assert m["seconds"] >= 0 and m["seconds_per_1k_samples"] >= 0
    on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert on_disk == m


def test_predictions_file_content(tmp_path):
    _run(tmp_path)
    rows = load_predictions(tmp_path / "run" / "predictions.jsonl")
    assert [r["sample_id"] for r in rows] == ["a:1", "a:2", "b:1"]
    assert rows[1] == {
        "sample_id": "a:2",
        "user_id": "a",
        "history": ["1", "6"],
        "target": "4",
        "ranked": ["6", "5", "4"],
    }


def test_filter_seen_excludes_seen_items(tmp_path):
    m = _run(tmp_path, filter_seen=True, seen_items=lambda s: set(s.history))
    rows = load_predictions(tmp_path / "run" / "predictions.jsonl")
    for r in rows:
        assert not set(r["ranked"]) & set(r["history"])
    assert rows[1]["ranked"] == ["5", "4", "3"]
    # ranks now 0, 1, 4
    assert m["ndcg@3"] == pytest.approx((1 + 1 / math.log2(3)) / 3)
    assert m["filter_seen"] is True


def test_filter_seen_needs_seen_items(tmp_path):
    with pytest.raises(ValueError):
        _run(tmp_path, filter_seen=True)


def test_metrics_from_predictions_reproduce(tmp_path):
    m = _run(tmp_path)
    again = metrics_from_predictions(
        tmp_path / "run" / "predictions.jsonl", catalog=CATALOG, train_item_counts=TRAIN_COUNTS, ks=(1, 3)
    )
    assert again == {k: m[k] for k in again}


def test_select_subset_seeded_and_in_order():
    samples = [Sample(f"u:{i}", "u", ("1",), "2") for i in range(1, 101)]
    sub = select_subset(samples, n=10, seed=0)
    assert len(sub) == 10 and sub == select_subset(samples, n=10, seed=0)
    assert [s.position for s in sub] == sorted(s.position for s in sub)
    assert sub != select_subset(samples, n=10, seed=1)
    assert select_subset(samples, n=0) == samples and select_subset(samples, n=500) == samples
