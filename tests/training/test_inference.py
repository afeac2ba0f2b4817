"""The inference layer: bundles load from the bundle alone, without training code, and rank identically."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tests.movielens import tiny_cli_overrides, write_movielens
from training.bundle import BundleError
from training.cli import app
from training.inference import RequestError, build_request, load_recommender

# What loading and running a policy bundle may pull in: nothing that trains, fetches, evaluates or orchestrates.
POLICY_MODULES = {
    "training", "training.bundle", "training.catalog", "training.config", "training.data", "training.data.types",
    "training.devices", "training.identifiers", "training.identifiers.atomic", "training.identifiers.base",
    "training.identifiers.kmeans", "training.identifiers.rqkmeans", "training.identifiers.titles",
    "training.identifiers.trie", "training.inference", "training.models", "training.models.kv_cache",
    "training.models.lean_decoder",
    "training.models.policy",
    "training.models.policy_recommender", "training.padding", "training.prompts", "training.recommender",
    "training.rollout", "training.rollout.beam", "training.rollout.generator", "training.text",
    "training.tokenization", "training.tokenization.builder",
}
FORBIDDEN = ("training.trainers", "training.pipeline", "training.data.fetch", "training.data.adapters",
             "training.eval", "training.baselines.train", "training.cli")
RANK_SCRIPT = """
import json, sys
from training.inference import build_request, load_recommender
rec = load_recommender(sys.argv[1], "cpu")
samples = [build_request(rec.catalog, h.split(","), keep=20) for h in sys.argv[2:]]
ranked = rec.rank(samples, 5)
mods = sorted(m for m in sys.modules if m == "training" or m.startswith("training."))
print(json.dumps({"ranked": ranked, "modules": mods}))
"""
HISTORIES = ["1,2,3", "5", "7,8,9,10,11"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(root, overrides, policy bundle, sasrec bundle) trained once on the tiny MovieLens folder."""
    root = tmp_path_factory.mktemp("inference")
    write_movielens(root / "ml")
    overrides = [*tiny_cli_overrides(root), "sft.max_epochs=2", "baseline.max_epochs=2", "baseline.min_epochs=1",
                 "baseline.hidden=16"]
    runner = CliRunner()
    assert runner.invoke(app, ["train", "sft", *overrides]).exit_code == 0
    result = runner.invoke(app, ["baseline", "train", "--model", "sasrec", *overrides])
    assert result.exit_code == 0, result.output
    return root, overrides, root / "runs" / "sft" / "bundle", root / "runs" / "sasrec-tiny-temporal" / "bundle"


def _rank_in_fresh_process(bundle) -> dict:
    out = subprocess.run([sys.executable, "-c", RANK_SCRIPT, str(bundle), *HISTORIES], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_policy_bundle_round_trip_in_a_fresh_process_pulls_no_training_code(trained):
    _, _, bundle, _ = trained
    fresh = _rank_in_fresh_process(bundle)
    assert set(fresh["modules"]) == POLICY_MODULES
    assert not [m for m in fresh["modules"] if m.startswith(FORBIDDEN)]
    rec = load_recommender(bundle, "cpu")
    here = rec.rank([build_request(rec.catalog, h.split(","), keep=20) for h in HISTORIES], 5)
    assert fresh["ranked"] == here and all(len(r) == 5 for r in here)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_baseline_bundle_loads_without_training_code(trained):
    fresh = _rank_in_fresh_process(trained[3])
    assert not [m for m in fresh["modules"] if m.startswith(FORBIDDEN)]
    assert all(len(r) == 5 for r in fresh["ranked"])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_manifest_records_generation_settings_and_no_device(trained):
    manifest = json.loads((trained[2] / "manifest.json").read_text())
    assert manifest["generation"] == {"identifier_scheme": "atomic", "prompt_layout": 1, "max_history": 20,
                                      "beam_width": 5, "backend": "batched", "max_prompt_tokens": 480}
    assert manifest["dataset"]["split_dir"].endswith("splits/tiny-temporal")
    assert "device" not in json.dumps(manifest["source"]["settings"])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_altered_or_foreign_bundles_are_refused(trained, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(trained[2], copy)
    (copy / "catalog.json").write_text((copy / "catalog.json").read_text() + " ")
    with pytest.raises(BundleError, match="files changed"):
        load_recommender(copy)
    (copy / "manifest.json").write_text("[1, 2]")
    with pytest.raises(BundleError, match="JSON list, not a manifest"):
        load_recommender(copy)


def test_requests_refuse_empty_and_unknown_histories(tiny_catalog):
    with pytest.raises(RequestError, match="history is empty"):
        build_request(tiny_catalog, ",,,".split(","))
    with pytest.raises(RequestError, match="unknown item"):
        build_request(tiny_catalog, ["1", "x" * 100_000])
    try:
        build_request(tiny_catalog, ["x" * 100_000])
    except RequestError as err:
        assert len(str(err)) < 200
    sample = build_request(tiny_catalog, [str(i) for i in range(1, 13)], keep=4)
    assert sample.history == ("9", "10", "11", "12")
