"""Cached artifacts are keyed by what made them, and every bad input is one clear line, never a traceback."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from tests.movielens import tiny_cli_overrides, write_movielens
from training.cli import app

FAST = ["sft.max_epochs=2", "baseline.max_epochs=2", "baseline.min_epochs=1", "baseline.hidden=16"]


def run(*args: str):
    return CliRunner().invoke(app, [*args])


def text(result) -> str:
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def trained_root(tmp_path_factory):
    """A workspace (raw data, split, sft + sasrec bundles) trained once; tests work on copies of it."""
    root = tmp_path_factory.mktemp("trained")
    write_movielens(root / "ml")
    overrides = [*tiny_cli_overrides(root), *FAST]
    assert run("train", "sft", *overrides).exit_code == 0
    assert run("baseline", "train", "--model", "sasrec", *overrides).exit_code == 0
    return root


@pytest.fixture
def ws(trained_root, tmp_path):
    """(root, overrides) of a private copy of the trained workspace."""
    root = tmp_path / "ws"
    shutil.copytree(trained_root, root)
    return root, [*tiny_cli_overrides(root), *FAST]


@pytest.fixture
def data_only(tmp_path):
    write_movielens(tmp_path / "ml")
    return tmp_path, tiny_cli_overrides(tmp_path)


def _split_sha(root) -> str:
    return json.loads((root / "data" / "splits" / "tiny-temporal" / "meta.json").read_text())["sha256"]


def test_split_is_recomputed_when_its_inputs_change(data_only, tmp_path):
    root, overrides = data_only
    assert run("data", "split", *overrides).exit_code == 0
    first = _split_sha(root)
    assert run("data", "split", *overrides, "data.max_history=3").exit_code == 0
    assert _split_sha(root) != first
    write_movielens(tmp_path / "other", n_items=15)
    assert run("data", "split", *overrides, f"data.path={tmp_path / 'other'}").exit_code == 0
    other = _split_sha(root)
    assert other not in (first,)
    with (tmp_path / "other" / "u.data").open("a") as fh:
        fh.write("1\t15\t5\t999999\n")
    assert run("data", "split", *overrides, f"data.path={tmp_path / 'other'}").exit_code == 0
    assert _split_sha(root) != other


def test_deleted_or_altered_split_files_are_rewritten(data_only):
    root, overrides = data_only
    assert run("data", "split", *overrides).exit_code == 0
    folder = root / "data" / "splits" / "tiny-temporal"
    (folder / "test.jsonl").unlink()
    result = run("data", "split", *overrides)
    assert result.exit_code == 0 and "files missing or altered" in text(result)
    assert (folder / "test.jsonl").is_file()
    profiles = json.loads((folder / "profiles.json").read_text())
    profiles["1"]["age"] = "99"
    (folder / "profiles.json").write_text(json.dumps(profiles))
    result = run("data", "split", *overrides)
    assert result.exit_code == 0 and "files missing or altered" in text(result)  # profiles are under the hash


def test_empty_data_is_refused(data_only):
    root, overrides = data_only
    (root / "ml" / "u.data").write_text("")
    result = run("train", "sft", *overrides)
    assert result.exit_code == 1 and "nothing to split" in text(result) and "Traceback" not in result.output


def test_second_training_says_nothing_was_written(ws):
    root, overrides = ws
    result = run("train", "sft", *overrides)
    assert result.exit_code == 0 and "up to date, not retrained" in text(result) and "written" not in text(result)


def test_policy_bundle_of_other_settings_is_refused_then_forced(ws):
    root, overrides = ws
    result = run("train", "sft", *overrides, "sft.lr=0.02")
    assert result.exit_code == 1 and "sft.lr: 0.01 -> 0.02" in text(result) and "--force" in text(result)
    (root / "runs" / "sft" / "eval").mkdir(exist_ok=True)
    (root / "runs" / "sft" / "eval" / "metrics.json").write_text("{}")
    result = run("train", "sft", *overrides, "sft.lr=0.02", "--force")
    assert result.exit_code == 0 and "bundle written" in text(result)
    assert not (root / "runs" / "sft" / "eval" / "metrics.json").exists()  # stale metrics go with the old bundle


def test_resume_from_a_checkpoint_of_other_settings_is_refused(ws):
    root, overrides = ws
    shutil.rmtree(root / "runs" / "sft" / "bundle")  # an interrupted run: checkpoint, no bundle
    result = run("train", "sft", *overrides, "sft.lr=0.02")
    assert result.exit_code == 1 and "other settings" in text(result) and "sft.lr" in text(result)
    result = run("train", "sft", *overrides, "policy.hidden_size=64", "policy.intermediate_size=128")
    assert result.exit_code == 1 and "policy.hidden_size: 32 -> 64" in text(result)


def test_corrupt_checkpoint_is_a_clear_error(ws):
    root, overrides = ws
    shutil.rmtree(root / "runs" / "sft" / "bundle")
    last = root / "runs" / "sft" / "train" / "last.pt"
    last.write_bytes(last.read_bytes()[:100])
    result = run("train", "sft", *overrides)
    assert result.exit_code == 1 and "unreadable" in text(result) and "Traceback" not in result.output


def test_training_over_an_altered_bundle_is_refused(ws):
    root, overrides = ws
    with (root / "runs" / "sft" / "bundle" / "catalog.json").open("a") as fh:
        fh.write(" ")
    result = run("train", "sft", *overrides)
    assert result.exit_code == 1 and "files changed" in text(result) and "--force" in text(result)


def test_baseline_bundle_of_other_settings_is_refused(ws):
    root, overrides = ws
    result = run("baseline", "train", "--model", "sasrec", *overrides, "baseline.hidden=32")
    assert result.exit_code == 1 and "config.hidden: 16 -> 32" in text(result)
    result = run("baseline", "train", "--model", "sasrec", *overrides, "baseline.hidden=32", "--force")
    assert result.exit_code == 0 and "bundle written" in text(result)


def test_eval_refuses_another_split_unless_asked(ws):
    root, overrides = ws
    bundle = root / "runs" / "sft" / "bundle"
    result = run("eval", "--bundle", str(bundle), *overrides, "data.max_history=3")
    assert result.exit_code == 1 and "--allow-split-mismatch" in text(result)
    result = run("eval", "--bundle", str(bundle), *overrides, "data.max_history=3", "--allow-split-mismatch")
    assert result.exit_code == 0 and "trained on" in text(result)
    assert "test_ndcg@10" not in json.loads((bundle / "manifest.json").read_text())["metrics"]


def test_eval_records_metrics_only_from_its_own_settings(ws, tmp_path):
    root, overrides = ws
    bundle = root / "runs" / "sasrec-tiny-temporal" / "bundle"
    result = run("eval", "--bundle", str(bundle), *overrides, "eval.test_samples=3", "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    assert json.loads((bundle / "manifest.json").read_text())["metrics"] == {}
    result = run("eval", "--bundle", str(bundle), *overrides, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["recorded_in_manifest"] is True
    assert "test_ndcg@10" in json.loads((bundle / "manifest.json").read_text())["metrics"]


def test_recommend_bad_requests(ws):
    root, _ = ws
    bundle = str(root / "runs" / "sft" / "bundle")
    result = run("recommend", "--bundle", bundle, "--history", ",,,")
    assert result.exit_code == 1 and "history is empty" in text(result)
    result = run("recommend", "--bundle", bundle, "--user", "u" * 100_000)
    assert result.exit_code == 1 and "unknown user" in text(result) and len(result.output) < 400
    result = run("recommend", "--bundle", bundle, "--history", "1,nope")
    assert result.exit_code == 1 and "unknown item" in text(result)
    result = run("recommend", "--bundle", bundle)
    assert result.exit_code == 1 and "exactly one of --user or --history" in text(result)


def test_recommend_user_with_an_altered_index_is_a_clear_error(ws):
    root, _ = ws
    split = root / "data" / "splits" / "tiny-temporal"
    (split / "users.json").write_text((split / "users.json").read_text().replace('"3"', '"33"'))
    result = run("recommend", "--bundle", str(root / "runs" / "sft" / "bundle"), "--user", "3", "--split", str(split))
    assert result.exit_code == 1 and "does not match its sha256" in text(result)


def test_recommend_user_exactly_k_unseen_items(ws):
    root, _ = ws
    bundle = str(root / "runs" / "sft" / "bundle")
    result = run("recommend", "--bundle", bundle, "--user", "5", "-k", "2", "--json",
                 "--split", str(root / "data" / "splits" / "tiny-temporal"))
    assert result.exit_code == 0, result.output
    seen = {str((5 + step) % 12 + 1) for step in range(10)}
    items = [i["item_id"] for i in json.loads(result.stdout)["items"]]
    assert len(items) == 2 and not set(items) & seen


def test_manifest_that_is_a_list_is_a_clear_error(ws):
    root, overrides = ws
    bundle = root / "runs" / "sft" / "bundle"
    (bundle / "manifest.json").write_text("[]")
    result = run("eval", "--bundle", str(bundle), *overrides)
    assert result.exit_code == 1 and "not a manifest object" in text(result)


def test_missing_base_model_and_yaml_errors(data_only, tmp_path):
    _, overrides = data_only
    result = run("train", "sft", *overrides, "--base-model", "/nonexistent")
    assert result.exit_code == 1 and "not a local HF model folder" in text(result)
    result = run("train", "sft", *overrides, "sft.max_epochs=[3")
    assert result.exit_code == 2 and "not valid YAML" in text(result)
    bad = tmp_path / "bad.yaml"
    bad.write_text("sft: {max_epochs: 3\n")
    result = run("data", "split", "--config", str(bad))
    assert result.exit_code == 2 and "not valid YAML" in text(result)


def test_version_config_show_and_presets():
    result = run("--version")
    assert result.exit_code == 0 and result.output.startswith("reasonrec ")
    result = run("config", "show", "--config", "atomic", "sft.lr=0.5", "--json")
    assert result.exit_code == 0
    shown = json.loads(result.stdout)
    assert shown["identifiers"]["scheme"] == "atomic" and shown["sft"]["lr"] == 0.5 and shown["device"] == "auto"
    result = run("config", "list")
    assert result.exit_code == 0 and {"default", "atomic"} <= set(result.output.split())
