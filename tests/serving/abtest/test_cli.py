"""`reasonrec ab report` through typer's CliRunner on a tmp log."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from feature_store.store import FeatureStore
from serving.abtest.cli import ab_app
from serving.feedback import RedisFeedbackLog
from tests.serving.abtest.logs import HAND_LOG, NEXT_ITEMS, write_config, write_jsonl
from tests.serving.fakes import dead_redis_url

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(ab_app, ["report", *args], catch_exceptions=False)


@pytest.mark.timeout(60)
def test_report_writes_json_markdown_and_plot(tmp_path):
    config = write_config(tmp_path)
    log = write_jsonl(tmp_path / "feedback.jsonl", HAND_LOG)
    next_log = write_jsonl(tmp_path / "next.jsonl", NEXT_ITEMS)
    out = tmp_path / "reports" / "ab_readout"
    result = invoke("--experiment", "exp", "--config", str(config), "--log", str(log), "--next", str(next_log),
                    "--k", "2", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "SRM: chi2 0.200, dof 1, p 0.655: pass" in result.output
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["command"].startswith("reasonrec ab report --experiment exp")
    trt = next(r for r in report["rows"] if r["name"] == "trt")
    assert trt["metrics"]["clicks"] == 4 and trt["metrics"]["hr@2"] == 0.25
    assert (tmp_path / "reports" / "ab_readout_ctr.png").is_file()
    assert (tmp_path / "reports" / "ab_readout.md").is_file()


@pytest.mark.timeout(30)
def test_report_uses_the_config_log_and_fails_on_srm_when_asked(tmp_path):
    log = write_jsonl(tmp_path / "feedback.jsonl", HAND_LOG)
    config = tmp_path / "serve.yaml"
    write_config(tmp_path)
    config.write_text(config.read_text() + f"feedback_log: {log}\n")
    result = invoke("-e", "exp", "-c", str(config), "--control", "trt", "--srm-alpha", "0.9", "--fail-on-srm",
                    "--out", str(tmp_path / "r"))
    assert result.exit_code == 3, result.output
    assert "FAIL" in result.output and "control" in result.output


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("args", "message"), [
    (["-e", "nope"], "no experiment 'nope'"),
    (["-e", "exp", "--control", "zz"], "--control 'zz' is not an arm"),
    (["-e", "exp", "--log", "missing.jsonl"], "not found"),
])
def test_bad_input_is_one_line_and_exit_1(tmp_path, args, message):
    config = write_config(tmp_path)
    args = [a if a != "missing.jsonl" else str(tmp_path / a) for a in args]
    result = invoke(*args, "-c", str(config), "--out", str(tmp_path / "r"))
    assert result.exit_code == 1 and message in result.output
    assert not (tmp_path / "r.json").exists()


def redis_config(tmp_path, url: str):
    config = write_config(tmp_path)
    config.write_text(config.read_text() + f"feedback_log: redis\nredis_url: {url}\nnamespace: abcli\n")
    return config


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_report_reads_the_redis_stream(tmp_path, redis_url, monkeypatch):
    monkeypatch.delenv("REASONREC_REDIS_URL", raising=False)
    with FeatureStore(redis_url, namespace="abcli", timeout_s=0.5, retries=0) as store:
        RedisFeedbackLog(store).append(HAND_LOG)
    result = invoke("-e", "exp", "-c", str(redis_config(tmp_path, redis_url)), "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    trt = next(r for r in json.loads((tmp_path / "r.json").read_text())["rows"] if r["name"] == "trt")
    assert (trt["metrics"]["exposures"], trt["metrics"]["clicks"]) == (7, 4)


@pytest.mark.timeout(30)
def test_redis_down_is_exit_2(tmp_path, monkeypatch):
    monkeypatch.delenv("REASONREC_REDIS_URL", raising=False)
    result = invoke("-e", "exp", "-c", str(redis_config(tmp_path, dead_redis_url())), "--out", str(tmp_path / "r"))
    assert result.exit_code == 2 and "error" in result.output
