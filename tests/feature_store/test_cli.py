"""`reasonrec store …` through typer's CliRunner against a real redis-server, and against none."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from feature_store.cli import store_app
from feature_store.schema import UserFeatures
from feature_store.store import FeatureStore
from tests.redis_server import free_port
from training.data.split import build_split
from training.data.store import write_split

pytestmark = pytest.mark.integration
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(store_app, list(args), catch_exceptions=False)


@pytest.mark.timeout(30)
def test_load_histories_stats_get_and_purge(redis_url, tmp_path, tiny_dataset):
    split_dir = tmp_path / "split"
    write_split(build_split(tiny_dataset), split_dir)
    target = ["--url", redis_url, "--namespace", "cli"]
    loaded = invoke("load-histories", "--split-dir", str(split_dir), *target)
    assert loaded.exit_code == 0, loaded.output
    assert "30 written, 0 already as new" in loaded.output
    assert "0 written, 30 already as new" in invoke("load-histories", "--split-dir", str(split_dir), *target).output
    stats = invoke("stats", "--json", *target)
    assert stats.exit_code == 0
    assert json.loads(stats.output) | {"redis_used_memory_bytes": 0, "redis_used_memory_human": ""} == {
        "namespace": "cli", "users": 30, "users_with_cot": 0, "schema_version": 1, "ttl_s": 30 * 86400, "jobs": 0,
        "redis_used_memory_bytes": 0, "redis_used_memory_human": ""}
    assert "users_with_cot" in invoke("stats", *target).output
    shown = invoke("get", "1", *target)
    assert shown.exit_code == 0 and "2 3 4 5 6 7 8" in shown.output
    assert json.loads(invoke("get", "1", "--json", *target).output)["history"] == '["2","3","4","5","6","7","8"]'
    missing = invoke("get", "nobody", *target)
    assert missing.exit_code == 1 and "has no row" in missing.output
    refused = runner.invoke(store_app, ["purge", *target], input="n\n")
    with FeatureStore(redis_url, "cli") as store:
        assert refused.exit_code == 1 and store.count_users() == 30
    purged = invoke("purge", "--yes", *target)
    assert purged.exit_code == 0 and "deleted 31 keys" in purged.output


@pytest.mark.timeout(30)
def test_url_from_the_environment_and_cot_count(redis_url, monkeypatch):
    with FeatureStore(redis_url) as store:
        store.write([UserFeatures("u", 1.0, {"cot": "c"})])
    monkeypatch.setenv("REASONREC_REDIS_URL", redis_url)
    stats = invoke("stats", "--json")
    assert stats.exit_code == 0 and json.loads(stats.output)["users_with_cot"] == 1


@pytest.mark.timeout(30)
@pytest.mark.parametrize("command", [["stats"], ["get", "1"], ["purge", "--yes"]])
def test_redis_down_is_one_red_line_and_exit_2(command):
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = invoke(*command, "--url", url)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Redis at") and "unavailable" in lines[0]
    assert "Traceback" not in result.output


@pytest.mark.timeout(30)
def test_bad_split_dir_is_exit_1(redis_url, tmp_path):
    result = invoke("load-histories", "--split-dir", str(tmp_path / "nowhere"), "--url", redis_url)
    assert result.exit_code == 1 and "error:" in result.output and "Traceback" not in result.output


@pytest.mark.timeout(30)
def test_explicit_timestamp_and_a_history_that_is_not_json(redis_url, tmp_path, tiny_dataset):
    split_dir = tmp_path / "split"
    write_split(build_split(tiny_dataset), split_dir)
    target = ["--url", redis_url, "--namespace", "cli"]
    assert "30 written" in invoke("load-histories", "--split-dir", str(split_dir), "--updated-at", "5", *target).output
    assert "30 written" in invoke("load-histories", "--split-dir", str(split_dir), *target).output  # mtime is newer
    with FeatureStore(redis_url, "cli") as store:
        store.write([UserFeatures("odd", 1.0, {"history": "not json"})])
    shown = invoke("get", "odd", *target)
    assert shown.exit_code == 0 and "not json" in shown.output
