"""`reasonrec train rechead` on the tiny MovieLens folder with the real MiniLM: bundle, test metrics, reuse."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.movielens import tiny_cli_overrides, write_movielens
from training.cli import app

RECHEAD = ["rechead.epochs=2", "rechead.dim=16", "rechead.negatives=5", "rechead.batch_size=32",
           "rechead.train_samples=100", "rechead.valid_samples=30"]


@pytest.fixture
def overrides(tmp_path):
    write_movielens(tmp_path / "ml")
    return [*tiny_cli_overrides(tmp_path), *RECHEAD]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_train_rechead_writes_a_bundle_and_prints_its_test_metrics(tmp_path, overrides, one_torch_thread):
    runner = CliRunner()
    result = runner.invoke(app, ["train", "rechead", *overrides])
    assert result.exit_code == 0, result.output
    bundle = tmp_path / "runs" / "rechead_programmatic-tiny-temporal" / "bundle"
    assert f"bundle written: {bundle}" in " ".join(result.output.split()) and "ndcg@10" in result.output
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["kind"] == "rechead" and "test_ndcg@10" in manifest["metrics"]
    metrics = json.loads((bundle.parent / "eval" / "metrics.json").read_text())
    assert metrics["invalid_rate"] == 0.0 and metrics["n_samples"] > 0
    result = runner.invoke(app, ["train", "rechead", *overrides])
    assert result.exit_code == 0 and "up to date" in result.output
    result = runner.invoke(app, ["recommend", "--bundle", str(bundle), "--history", "1,2,3", "-k", "3", "--json"])
    assert result.exit_code == 0, result.output
    items = [i["item_id"] for i in json.loads(result.stdout)["items"]]
    assert len(items) == 3 and not set(items) & {"1", "2", "3"}


@pytest.mark.timeout(30)
def test_a_bad_rechead_setting_is_a_config_error(overrides):
    result = CliRunner().invoke(app, ["train", "rechead", *overrides, "rechead.cot=llm"])
    assert result.exit_code == 2 and "config error" in result.output
