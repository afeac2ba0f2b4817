"""`reasonrec train r2ec` on the tiny MovieLens folder: RecPO and its control, bundle, test metrics, reuse."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.movielens import tiny_cli_overrides, write_movielens
from training.cli import app

R2EC = ["r2ec.steps=2", "r2ec.prompts_per_step=4", "r2ec.max_think_tokens=4", "r2ec.valid_samples=6",
        "r2ec.eval_every=1", "r2ec.lr=1e-3", "r2ec.warmup_steps=0"]


@pytest.mark.timeout(120)
def test_train_r2ec_writes_a_bundle_scores_it_and_reuses_it(tmp_path, one_torch_thread):
    write_movielens(tmp_path / "ml")
    overrides = [*tiny_cli_overrides(tmp_path), *R2EC]
    runner = CliRunner()
    result = runner.invoke(app, ["train", "r2ec", "--config", "r2ec", *overrides])
    assert result.exit_code == 0, result.output
    bundle = tmp_path / "runs" / "r2ec_recpo-tiny-temporal" / "bundle"
    assert f"bundle written: {bundle}" in " ".join(result.output.split()) and "ndcg@10" in result.output
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["kind"] == "r2ec" and "test_ndcg@10" in manifest["metrics"]
    assert manifest["generation"]["r2ec"]["reasoning"] is True and manifest["eval"]["filter_seen"] is True
    training = manifest["model"]["training"]
    assert training["steps_run"] == 2 and training["seconds_per_step"] > 0 and training["best_step"] in (1, 2)
    metrics = json.loads((bundle.parent / "eval" / "metrics.json").read_text())
    assert metrics["n_samples"] > 0 and metrics["filter_seen"] is True

    again = runner.invoke(app, ["train", "r2ec", "--config", "r2ec", *overrides])
    assert again.exit_code == 0 and "up to date" in again.output

    control = runner.invoke(app, ["train", "r2ec", "--config", "r2ec", *overrides, "r2ec.reasoning=false",
                                  "r2ec.name=r2ec_no_reasoning", "r2ec.steps=1"])
    assert control.exit_code == 0, control.output
    control_manifest = json.loads((tmp_path / "runs" / "r2ec_no_reasoning-tiny-temporal" / "bundle" /
                                   "manifest.json").read_text())
    assert control_manifest["generation"]["r2ec"]["reasoning"] is False

    refused = runner.invoke(app, ["train", "r2ec", "--config", "r2ec", *overrides, "r2ec.name=child",
                                  "--from-bundle", str(bundle)])
    assert refused.exit_code == 1 and "starts from a policy bundle" in refused.output
