"""Reasoning mode through the CLI on the tiny MovieLens folder: train, recommend (CoT + answer), eval, refusals."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tests.movielens import tiny_cli_overrides, write_movielens
from tests.training.test_inference import POLICY_MODULES, RANK_SCRIPT
from training.cli import app

REASONING = ["reasoning.enabled=true", "reasoning.epochs=3", "reasoning.valid_samples=20",
             "reasoning.decode.max_think_tokens=160", "name=reason"]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """(root, overrides, reasoning bundle, direct-only bundle), each trained once on the tiny folder."""
    root = tmp_path_factory.mktemp("reasoning_cli")
    write_movielens(root / "ml")
    overrides = [*tiny_cli_overrides(root), "sft.max_epochs=1"]
    runner = CliRunner()
    result = runner.invoke(app, ["train", "sft", *overrides, *REASONING])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["train", "sft", *overrides])
    assert result.exit_code == 0, result.output
    return root, overrides, root / "runs" / "reason" / "bundle", root / "runs" / "sft" / "bundle"


def _recommend(bundle, *args):
    return CliRunner().invoke(app, ["recommend", "--bundle", str(bundle), "--history", "1,2,3,4", *args])


@pytest.mark.slow
@pytest.mark.timeout(240)  # the module fixture trains two tiny bundles
def test_train_sft_with_reasoning_records_it_in_the_manifest(bundles):
    root, overrides, bundle, direct = bundles
    manifest = json.loads((bundle / "manifest.json").read_text())
    entry = manifest["generation"]["reasoning"]
    assert entry == {"layout": 1, "n_cots": 1, "temperature": 0.0, "top_p": 0.9, "max_think_tokens": 160, "seed": 0,
                     "max_total_tokens": 512}
    assert manifest["source"]["settings"]["reasoning"]["epochs"] == 3
    assert manifest["model"]["training"]["n_reasoning_examples"] == manifest["model"]["training"]["n_reasoning_records"]
    vocab = json.loads((bundle / "tokenizer" / "tokenizer.json").read_text())["model"]["vocab"]
    direct_vocab = json.loads((direct / "tokenizer" / "tokenizer.json").read_text())["model"]["vocab"]
    assert "behavioural" in vocab and "behavioural" not in direct_vocab  # the CoT words joined the vocabulary
    direct_manifest = json.loads((direct / "manifest.json").read_text())
    assert "reasoning" not in direct_manifest["generation"] and "reasoning" not in direct_manifest["source"]["settings"]
    again = CliRunner().invoke(app, ["train", "sft", *overrides, *REASONING])
    assert again.exit_code == 0 and "up to date" in again.output


@pytest.mark.slow
@pytest.mark.timeout(240)  # the module fixture trains two tiny bundles
def test_recommend_in_reasoning_mode_prints_the_cot_the_answer_and_k_items(bundles):
    _, _, bundle, _ = bundles
    result = _recommend(bundle, "-k", "3", "--mode", "reasoning")
    assert result.exit_code == 0, result.output
    assert "chain of thought 1 of 1" in result.output and "  answer: " in result.output
    assert result.output.count("(id ") == 4  # the answer, then 3 ranked items
    doc = json.loads(_recommend(bundle, "-k", "3", "--mode", "reasoning", "--json").stdout)
    items = [i["item_id"] for i in doc["items"]]
    assert doc["mode"] == "reasoning" and len(items) == len(set(items)) == 3
    assert all(i in {str(n) for n in range(5, 13)} for i in items)  # real items, history excluded
    assert doc["reasoning"]["thoughts"][0]["text"] and doc["reasoning"]["answers"][0]["item_id"] == items[0]


@pytest.mark.slow
@pytest.mark.timeout(240)  # the module fixture trains two tiny bundles
def test_pass_k_samples_k_cots_whose_answers_head_the_ranking(bundles):
    _, _, bundle, _ = bundles
    result = _recommend(bundle, "-k", "5", "--mode", "reasoning", "--pass-k", "3", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    answers = {a["item_id"] for a in doc["reasoning"]["answers"]}
    assert len(doc["reasoning"]["thoughts"]) == 3 and len(doc["items"]) == 5
    assert {i["item_id"] for i in doc["items"][:len(answers)]} == answers


@pytest.mark.slow
@pytest.mark.timeout(240)  # the module fixture trains two tiny bundles
def test_a_reasoning_bundle_still_answers_in_direct_mode_without_reasoning_code(bundles):
    _, _, bundle, _ = bundles
    doc = json.loads(_recommend(bundle, "-k", "3", "--json").stdout)
    assert doc["mode"] == "direct" and "reasoning" not in doc and len(doc["items"]) == 3
    out = subprocess.run([sys.executable, "-c", RANK_SCRIPT, str(bundle), "1,2,3"], capture_output=True, text=True,
                         timeout=50)
    assert out.returncode == 0, out.stderr[-2000:]
    assert set(json.loads(out.stdout.strip().splitlines()[-1])["modules"]) == POLICY_MODULES


@pytest.mark.slow
@pytest.mark.timeout(240)  # the module fixture trains two tiny bundles
def test_reasoning_mode_on_a_direct_bundle_is_a_one_line_error(bundles):
    _, _, _, direct = bundles
    result = _recommend(direct, "--mode", "reasoning")
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "not trained for reasoning mode" in result.stderr
    result = _recommend(direct, "--pass-k", "2")
    assert result.exit_code == 1 and "--pass-k needs --mode reasoning" in result.stderr
    result = _recommend(direct, "--mode", "thinking")
    assert result.exit_code == 2


@pytest.mark.slow
@pytest.mark.timeout(240)  # the module fixture trains two tiny bundles
def test_eval_in_reasoning_mode_reports_pass_at_k_and_keeps_direct_metrics_apart(bundles):
    _, overrides, bundle, _ = bundles
    args = [*overrides, *REASONING]
    runner = CliRunner()
    result = runner.invoke(app, ["eval", "--bundle", str(bundle), "--mode", "reasoning", "--json", *args])
    assert result.exit_code == 0, result.output
    out = bundle.parent / "eval" / "reasoning"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["invalid_rate"] == 0.0 and metrics["pass@1"] <= metrics["hr@5"]  # the answer heads the ranking
    rows = [json.loads(line) for line in (out / "reasoning.jsonl").read_text().splitlines()]
    assert len(rows) == metrics["n_samples"] and all(len(r["answers"]) == 1 and r["thoughts"] for r in rows)
    recorded = json.loads((bundle / "manifest.json").read_text())["metrics"]
    assert recorded["test_reasoning_pass@1"] == metrics["pass@1"] and "test_ndcg@10" not in recorded
    result = runner.invoke(app, ["eval", "--bundle", str(bundle), "--mode", "reasoning", "--pass-k", "2", *args])
    assert result.exit_code == 0 and "pass@2" in result.output and "not recorded" in result.output
    assert json.loads((bundle.parent / "eval" / "reasoning_pass2" / "metrics.json").read_text())["n_cots"] == 2
