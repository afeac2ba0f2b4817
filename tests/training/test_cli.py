"""End to end through the CLI on a tiny MovieLens-style folder: split -> train -> eval -> recommend."""

import json

import pytest
from typer.testing import CliRunner

from tests.movielens import tiny_cli_overrides, write_movielens
from training.cli import app


@pytest.fixture
def overrides(tmp_path):
    write_movielens(tmp_path / "ml")
    return tiny_cli_overrides(tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_split_train_eval_recommend(tmp_path, overrides):
    runner = CliRunner()
    result = runner.invoke(app, ["data", "split", *overrides])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["train", "sft", *overrides])
    assert result.exit_code == 0, result.output
    bundle = tmp_path / "runs" / "sft" / "bundle"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["kind"] == "policy" and manifest["dataset"]["split_sha256"]
    result = runner.invoke(app, ["eval", "--bundle", str(bundle), *overrides])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "runs" / "sft" / "eval" / "metrics.json").read_text())
    assert metrics["invalid_rate"] == 0.0
    # planted pattern: item i is always followed by item i + 1, so the target is one fixed item of 12;
    # a model that ignores the history hits it in the top 5 with probability 5/12 (0.42) at best
    assert metrics["hr@5"] >= 0.9
    # user 3 rated 10 of the 12 items: by default only the 2 unseen ones can come back
    result = runner.invoke(app, ["recommend", "--bundle", str(bundle), "--user", "3", "-k", "3", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    seen = {str((3 + step) % 12 + 1) for step in range(10)}
    assert len(doc["items"]) == 2 and not {i["item_id"] for i in doc["items"]} & seen
    result = runner.invoke(app, ["recommend", "--bundle", str(bundle), "--user", "3", "-k", "3", "--include-seen"])
    assert result.exit_code == 0, result.output
    assert result.output.count("(id ") == 3


def test_bad_inputs_give_clear_errors(tmp_path, overrides):
    runner = CliRunner()
    result = runner.invoke(app, ["eval", "--bundle", str(tmp_path / "missing"), *overrides])
    assert result.exit_code == 1 and "does not exist" in " ".join(result.output.split())
    result = runner.invoke(app, ["data", "split", "sft.max_epoch=3"])
    assert result.exit_code == 2 and "config error" in result.output


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_base_model_with_title_identifiers(tmp_path, overrides):
    """--base-model: any local HF causal LM directory; titles decoded under the trie, never invalid."""
    from training.catalog import Catalog
    from training.config import PolicyConfig
    from training.data.adapters import load_dataset
    from training.models.policy import build_policy
    from training.tokenization.builder import build_tokenizer, collect_vocabulary

    catalog = Catalog(load_dataset("movielens_local", tmp_path / "ml").items.values())
    tokenizer = build_tokenizer(collect_vocabulary(catalog, [], [], min_word_count=1))
    base = tmp_path / "pretrained"
    build_policy(PolicyConfig(hidden_size=32, num_heads=2, num_kv_heads=1, intermediate_size=64),
                 tokenizer).save_pretrained(base)
    tokenizer.save_pretrained(base)
    args = [*overrides, "identifiers.scheme=titles", "sft.max_epochs=1", "name=titles"]
    runner = CliRunner()
    result = runner.invoke(app, ["train", "sft", "--base-model", str(base), *args])
    assert result.exit_code == 0, result.output
    bundle = tmp_path / "runs" / "titles" / "bundle"
    result = runner.invoke(app, ["eval", "--bundle", str(bundle), *args])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "runs" / "titles" / "eval" / "metrics.json").read_text())
    assert metrics["invalid_rate"] == 0.0 and metrics["n_samples"] > 0


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_baseline_bundle_through_the_same_evaluator(tmp_path, overrides):
    args = [*overrides, "baseline.max_epochs=3", "baseline.min_epochs=1", "baseline.hidden=16"]
    runner = CliRunner()
    result = runner.invoke(app, ["baseline", "train", "--model", "sasrec", *args])
    assert result.exit_code == 0, result.output
    bundle = tmp_path / "runs" / "sasrec-tiny-temporal" / "bundle"
    assert json.loads((bundle / "manifest.json").read_text())["kind"] == "baseline"
    result = runner.invoke(app, ["eval", "--bundle", str(bundle), *args])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (bundle.parent / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert rows and set(rows[0]) == {"sample_id", "user_id", "history", "target", "ranked"}
    assert all(len(r["ranked"]) == 12 for r in rows)  # k=20 over a 12-item catalog
    result = runner.invoke(app, ["baseline", "train", "--model", "bpr", *args])
    assert result.exit_code == 1 and "unknown baseline" in " ".join(result.output.split())


def test_missing_data_folder_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(app, ["data", "split", "data.format=movielens_local",
                                      f"data.path={tmp_path / 'nowhere'}", f"data.data_dir={tmp_path}"])
    assert result.exit_code == 1 and "neither u.data nor ratings.dat" in " ".join(result.output.split())


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("recipe", ["grpo_basic", "riser", "sft_continued"])
def test_rl_recipes_from_an_sft_bundle(tmp_path, overrides, recipe):
    runner = CliRunner()
    fast = [*overrides, "sft.max_epochs=2"]
    assert runner.invoke(app, ["train", "sft", *fast]).exit_code == 0
    parent = tmp_path / "runs" / "sft" / "bundle"
    rl = [*fast, "rl.steps=4", "rl.prompts_per_step=8", "rl.eval_every=2", "rl.valid_samples=50"]
    result = runner.invoke(app, ["train", "rl", "--config", recipe, "--from-bundle", str(parent), *rl])
    assert result.exit_code == 0, result.output
    bundle = tmp_path / "runs" / recipe / "bundle"
    manifest = json.loads((bundle / "manifest.json").read_text())
    parent_manifest = json.loads((parent / "manifest.json").read_text())
    assert manifest["model"]["parent"]["bundle_version"] == parent_manifest["bundle_version"]
    assert manifest["model"]["training"]["recipe"] == recipe and manifest["generation"] == parent_manifest["generation"]
    assert runner.invoke(app, ["eval", "--bundle", str(bundle), *fast]).exit_code == 0
    again = runner.invoke(app, ["train", "rl", "--config", recipe, "--from-bundle", str(parent), *rl])
    assert again.exit_code == 0 and "up to date" in again.output
    onto_parent = runner.invoke(app, ["train", "rl", "--config", recipe, "--from-bundle", str(parent), *rl, "name=sft"])
    assert onto_parent.exit_code == 1 and "overwrite its parent" in " ".join(onto_parent.output.split())
