"""The `rechead` bundle: train -> write -> load_recommender -> rank, cache reuse, refusals, serving-side imports."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from training.bundle import BundleError
from training.catalog import Catalog
from training.config import RunConfig
from training.eval.metrics import ndcg_at_k, rank_of_target
from training.inference import load_recommender
from training.pipeline import StaleArtifactError
from training.reasoning.rechead_bundle import (
    compute_ndcg,
    evaluate_rechead_bundle,
    target_indices,
    train_rechead_bundle,
)
from training.reasoning.rechead_recommender import RecheadRecommender

FORBIDDEN = ("training.trainers", "training.pipeline", "training.data.fetch", "training.data.adapters",
             "training.eval", "training.baselines.train", "training.cli")
RANK_SCRIPT = """
import hashlib, json, sys
import numpy as np
import training.models.text_encoder as te

class Fake:
    def encode(self, sentences, **kwargs):
        return np.stack([np.random.default_rng(int.from_bytes(hashlib.sha256(s.encode()).digest()[:8], "little"))
                         .standard_normal(384) for s in sentences]).astype(np.float32)

te.load_text_encoder = lambda cache_dir=None: Fake()
from training.inference import build_request, load_recommender
rec = load_recommender(sys.argv[1], "cpu")
ranked = rec.rank([build_request(rec.catalog, ["1", "2", "3"])], 5)
mods = sorted(m for m in sys.modules if m == "training" or m.startswith("training."))
print(json.dumps({"ranked": ranked, "modules": mods}))
"""


def tiny_config(tmp_path, **rechead) -> RunConfig:
    settings = {"epochs": 2, "dim": 16, "negatives": 5, "batch_size": 32, "train_samples": 0, "valid_samples": 50,
                **rechead}
    return RunConfig.model_validate({"runs_dir": str(tmp_path / "runs"), "device": "cpu",
                                     "data": {"dataset": "tiny", "data_dir": str(tmp_path / "data")},
                                     "eval": {"test_samples": 0}, "rechead": settings})


@pytest.fixture
def fake_minilm(monkeypatch, hash_encoder):
    """Every default text encoder is the hash encoder (what a loaded bundle uses at request time)."""
    import training.models.text_encoder as text_encoder

    monkeypatch.setattr(text_encoder, "load_text_encoder", lambda cache_dir=None: hash_encoder)
    return hash_encoder


@pytest.fixture
def trained(tmp_path, tiny_dataset, tiny_split, fake_minilm, one_torch_thread):
    """(cfg, catalog, split, bundle) after 2 epochs on the tiny split with the hash encoder."""
    cfg, catalog = tiny_config(tmp_path), Catalog(tiny_dataset.items.values())
    bundle, written = train_rechead_bundle(cfg, catalog, tiny_split, encoder=fake_minilm)
    assert written and bundle == tmp_path / "runs" / "rechead_programmatic-tiny-temporal" / "bundle"
    return cfg, catalog, tiny_split, bundle


@pytest.mark.timeout(60)
def test_bundle_holds_the_model_the_item_matrix_and_the_feature_recipe(trained):
    _, catalog, _, bundle = trained
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["kind"] == "rechead" and manifest["name"] == "rechead_programmatic"
    assert manifest["features"]["cot"] == "programmatic" and manifest["features"]["teacher"]["name"] == "programmatic"
    assert manifest["features"]["text_encoder"] == "all-MiniLM-L6-v2"
    training = manifest["model"]["training"]
    assert len(training["history"]) == 2 and training["best_epoch"] in (0, 1) and training["n_train"] > 0
    matrix = np.load(bundle / "item_embeddings.npy")
    assert matrix.dtype == np.float32 and matrix.shape == (len(catalog), 16) and matrix.flags.c_contiguous
    rec = load_recommender(bundle, "cpu")
    assert np.array_equal(rec.item_matrix, rec.model.item_matrix().numpy())
    from serving.retrieval import ItemIndex

    index = ItemIndex.load(bundle / "faiss_index")  # shipped for the reasoning service: exact top-5 of item 0
    top = [item for item, _ in index.search(matrix[:1], 5)[0]]
    assert top == [catalog.item_ids[i] for i in np.argsort(-(matrix @ matrix[0]), kind="stable")[:5]]


@pytest.mark.timeout(60)
def test_loaded_recommender_ranks_distinct_catalog_items_without_excluded_ones(trained):
    _, catalog, split, bundle = trained
    rec = load_recommender(bundle, "cpu")
    assert isinstance(rec, RecheadRecommender) and rec.manifest["kind"] == "rechead"
    samples = split.test[:6]
    exclude = [set(s.history) | {s.target} for s in samples]
    for ranked, excluded in zip(rec.rank(samples, 5, exclude), exclude, strict=True):
        assert len(ranked) == len(set(ranked)) == min(5, len(catalog) - len(excluded))
        assert all(item in catalog for item in ranked) and not set(ranked) & excluded
    full = rec.rank(samples, 100)
    assert all(sorted(r) == sorted(catalog.item_ids) for r in full)
    assert rec.rank(samples, 5) == load_recommender(bundle, "cpu").rank(samples, 5)


@pytest.mark.timeout(60)
def test_validation_ndcg_matches_the_evaluator_on_the_ranked_lists(trained):
    _, catalog, split, bundle = trained
    rec = load_recommender(bundle, "cpu")
    samples = split.valid
    by_rank = np.mean([ndcg_at_k(rank_of_target(r, s.target), 10)
                       for r, s in zip(rec.rank(samples, 10), samples, strict=True)])
    inputs = rec.featurizer.inputs(samples)
    assert compute_ndcg(rec.model, inputs, target_indices(samples, catalog)) == pytest.approx(by_rank, abs=1e-6)


@pytest.mark.timeout(60)
def test_matching_settings_reuse_the_bundle_and_others_are_refused(trained, fake_minilm):
    cfg, catalog, split, bundle = trained
    version = json.loads((bundle / "manifest.json").read_text())["bundle_version"]
    assert train_rechead_bundle(cfg, catalog, split, encoder=fake_minilm) == (bundle, False)
    assert json.loads((bundle / "manifest.json").read_text())["bundle_version"] == version
    other = cfg.model_copy(update={"rechead": cfg.rechead.model_copy(update={"dim": 8})})
    with pytest.raises(StaleArtifactError, match=r"rechead\.dim.*rechead\.name="):
        train_rechead_bundle(other, catalog, split, encoder=fake_minilm)


@pytest.mark.timeout(60)
def test_cot_none_trains_a_history_only_bundle(tmp_path, tiny_dataset, tiny_split, fake_minilm, one_torch_thread):
    cfg, catalog = tiny_config(tmp_path, cot="none", epochs=1), Catalog(tiny_dataset.items.values())
    bundle, _ = train_rechead_bundle(cfg, catalog, tiny_split, encoder=fake_minilm)
    rec = load_recommender(bundle, "cpu")
    assert rec.manifest["features"]["teacher"] is None and rec.featurizer.teacher is None
    assert rec.manifest["model"]["training"]["answer_parsed_rate"] == 0.0
    assert all(len(r) == 3 for r in rec.rank(tiny_split.test[:3], 3))


@pytest.mark.timeout(60)
def test_evaluation_writes_metrics_and_records_them(trained, fake_minilm):
    cfg, catalog, split, bundle = trained
    metrics = evaluate_rechead_bundle(cfg, bundle, catalog, split, encoder=fake_minilm)
    assert metrics["n_samples"] == len(split.test) and metrics["invalid_rate"] == 0.0
    assert metrics["recorded_in_manifest"]
    saved = json.loads((bundle.parent / "eval" / "metrics.json").read_text())
    assert saved["ndcg@10"] == metrics["ndcg@10"]
    manifest = load_recommender(bundle, "cpu").manifest  # still valid after the metrics were recorded
    assert manifest["metrics"]["test_ndcg@10"] == metrics["ndcg@10"]


@pytest.mark.timeout(60)
def test_missing_altered_or_incomplete_bundles_are_refused(trained, tmp_path):
    bundle = trained[3]
    with pytest.raises(BundleError, match="does not exist"):
        load_recommender(tmp_path / "nowhere")
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    (copy / "rechead" / "model.pt").write_bytes(b"not a state dict")
    with pytest.raises(BundleError, match="files changed"):
        load_recommender(copy)
    shutil.rmtree(copy)
    shutil.copytree(bundle, copy)
    (copy / "item_embeddings.npy").unlink()
    with pytest.raises(BundleError, match=r"lacks \['item_embeddings.npy'\]"):
        load_recommender(copy)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_fresh_process_loads_and_ranks_without_training_code(trained):
    out = subprocess.run([sys.executable, "-c", RANK_SCRIPT, str(trained[3])], capture_output=True, text=True,
                         timeout=110)
    assert out.returncode == 0, out.stderr[-2000:]
    fresh = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(fresh["ranked"][0]) == 5
    assert "training.reasoning.rechead_recommender" in fresh["modules"]
    assert not [m for m in fresh["modules"] if m.startswith(FORBIDDEN)]
