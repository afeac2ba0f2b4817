"""SASRec and GRU4Rec on a planted pattern: item i is always followed by item i + 1 (mod 10)."""

import numpy as np
import pytest
import torch

from training.baselines.gru4rec import GRU4RecRecommender
from training.baselines.registry import BASELINES, load_baseline
from training.baselines.sasrec import SASRecRecommender
from training.baselines.seq_model import pad_left
from training.baselines.train import train_baseline
from training.baselines.train_seq import build_windows
from training.catalog import Catalog
from training.config import SeqConfig
from training.data.split import SplitData
from training.data.types import ItemInfo, Sample

N_ITEMS = 12  # items "11" and "12" never occur in the data
CONFIG = SeqConfig(hidden=32, n_layers=1, dropout=0.1, max_len=5, stride=2, lr=5e-3, batch_size=32,
                   max_epochs=40, patience=4, min_epochs=1, seed=0)


def _planted_split(n_users: int = 30, length: int = 16, seed: int = 0) -> SplitData:
    rng = np.random.default_rng(seed)
    seqs = {}
    for u in range(n_users):
        start = int(rng.integers(10))
        seqs[f"u{u}"] = [str((start + k) % 10 + 1) for k in range(length)]
    train = {u: s[: length - 2] for u, s in seqs.items()}

    def sample(u: str, pos: int) -> Sample:
        return Sample(f"{u}:{pos}", u, tuple(seqs[u][max(0, pos - 20):pos]), seqs[u][pos])

    return SplitData("temporal", [], [sample(u, length - 2) for u in seqs], [sample(u, length - 1) for u in seqs],
                     seqs, train)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog(ItemInfo(str(i), f"title {i}") for i in range(1, N_ITEMS + 1))


@pytest.fixture(scope="module", params=["sasrec", "gru4rec"])
def trained(request, catalog):
    split = _planted_split()
    return train_baseline(request.param, split, catalog, CONFIG, progress=False), split


def test_pad_left_and_windows_by_hand():
    assert pad_left([[1, 2, 3], [4]], 2, 9).tolist() == [[2, 3], [9, 4]]
    windows = build_windows([[0, 1, 2, 3, 4, 5], [7, 8], [6]], max_len=3, stride=1, pad=9)
    assert windows.tolist() == [[2, 3, 4, 5], [1, 2, 3, 4], [0, 1, 2, 3], [9, 9, 7, 8]]


@pytest.mark.timeout(120)
def test_planted_next_item_is_learned(trained):
    rec, split = trained
    top3 = rec.rank(split.test, 3)
    hr3 = np.mean([s.target in r for s, r in zip(split.test, top3, strict=True)])
    assert hr3 > 0.8  # chance: 3 / 12 = 0.25
    assert rec.train_log and all(np.isfinite(r["loss"]) for r in rec.train_log)


@pytest.mark.timeout(120)
def test_scores_cover_full_catalog_and_empty_history(trained, catalog):
    rec, split = trained
    samples = [split.test[0], Sample("x:0", "x", (), "1"), Sample("y:1", "y", ("999",), "1")]
    scores = rec.score_all(samples)
    assert scores.shape == (3, N_ITEMS) and np.isfinite(scores).all()
    assert "11" in catalog and "12" in catalog
    assert all(len(set(r)) == N_ITEMS for r in rec.rank(samples, N_ITEMS))


@pytest.mark.timeout(120)
def test_save_load_round_trip_gives_identical_scores(trained, catalog, tmp_path):
    rec, split = trained
    rec.save(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} >= {"config.json", "model.pt", "meta.json"}
    for loaded in (type(rec).load(tmp_path, catalog), load_baseline(tmp_path, catalog)):
        assert loaded.name == rec.name and loaded.config == rec.config
        np.testing.assert_array_equal(loaded.score_all(split.test), rec.score_all(split.test))


def test_load_refuses_another_catalog(catalog, tmp_path):
    SASRecRecommender(catalog, CONFIG).save(tmp_path)
    other = Catalog(ItemInfo(str(i), f"t {i}") for i in range(1, N_ITEMS))
    with pytest.raises(ValueError, match="catalog differs"):
        SASRecRecommender.load(tmp_path, other)


def test_registry_and_defaults():
    assert set(BASELINES) == {"pop", "sasrec", "gru4rec"}
    assert GRU4RecRecommender.default_config().n_layers == 1
    assert SASRecRecommender.default_config().max_len == 20
    with pytest.raises(ValueError, match="unknown baseline"):
        train_baseline("bpr", _planted_split(), None)


def test_sasrec_attention_is_causal(catalog):
    torch.manual_seed(0)
    model = SASRecRecommender(catalog, CONFIG).model.eval()
    seq = torch.tensor([[12, 0, 1, 2, 3], [12, 0, 1, 2, 7]])
    with torch.no_grad():
        hidden = model(seq)
    torch.testing.assert_close(hidden[0, :4], hidden[1, :4])  # changing the last item leaves the past alone
