"""deploy/multinode.py for real: a Ray head and a worker node on loopback (1 CPU each), the nearline job (one vLLM
actor per node) and the Serve app (one replica per node) on them, Redis; the state API must show both nodes at work.

Tiny bundles (a reasoning policy trained in ~20 s, a random direct policy and Rechead) and 6 users keep it to a few
minutes on 2 shared cores; every process the script starts is stopped by pid (it reports how many were left).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from serving.settings import ServeSettings
from tests.movielens import tiny_cli_overrides, write_movielens
from tests.redis_server import redis_server_path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT_TIMEOUT_S = 480
USERS = 6
CATALOG = {str(i) for i in range(1, 13)}
REASONING = ["sft.max_epochs=1", "reasoning.enabled=true", "reasoning.epochs=1", "reasoning.valid_samples=10",
             "reasoning.decode.max_think_tokens=16", "policy.hidden_size=64", "policy.intermediate_size=128",
             "name=reason"]

ON_PROC = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="the script finds its processes in /proc")
pytestmark = [pytest.mark.timeout(30)]


def heavy(test):
    """The real run: Ray, vLLM, Redis, minutes."""
    for mark in (pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(SCRIPT_TIMEOUT_S + 150), ON_PROC,
                 pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed"),
                 pytest.mark.skipif(redis_server_path() is None, reason="redis-server is not on PATH")):
        test = mark(test)
    return test


def write_bundles(root: Path) -> dict[str, Path]:
    """reasoning policy (nearline; trained on a tiny MovieLens folder whose split gives the users), direct policy
    and Rechead (serving; random, over the same 12 item ids)."""
    import torch

    from tests.policy_bundle import write_tiny_policy_bundle
    from tests.serving.bundles import HashEncoder, write_rechead_bundle
    from training.cli import app

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        write_movielens(root / "ml")
        result = CliRunner().invoke(app, ["train", "sft", *tiny_cli_overrides(root), *REASONING])
        assert result.exit_code == 0, result.output
        policy = write_tiny_policy_bundle(root / "sft", hidden=64, heads=2)
        rechead = write_rechead_bundle(root / "rechead", HashEncoder())
    finally:
        torch.set_num_threads(threads)
    return {"policy": policy, "reasoning-policy": root / "runs" / "reason" / "bundle", "rechead": rechead,
            "split-dir": root / "data" / "splits" / "tiny-temporal"}


def run_script(paths: dict[str, Path], out: Path) -> subprocess.CompletedProcess:
    """The script in its own process group; past the budget it gets SIGTERM (it then stops its cluster)."""
    command = [sys.executable, str(ROOT / "deploy" / "multinode.py"), "--users", str(USERS), "--calls", "4",
               "--max-think-tokens", "16", "--step-timeout", "240", "--json-out", str(out)]
    command += [x for name, path in paths.items() for x in (f"--{name}", str(path))]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=SCRIPT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        try:
            stdout, stderr = process.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
        pytest.fail(f"deploy/multinode.py ran past {SCRIPT_TIMEOUT_S} s:\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("multinode")
    result = run_script(write_bundles(root), root / "report.json")
    assert result.returncode == 0, result.stderr[-4000:]
    print(result.stdout)
    return json.loads((root / "report.json").read_text())


@heavy
def test_both_nodes_ran_the_nearline_job_and_the_serve_app(report):
    state = report["state"]
    assert set(state["nodes"]) == {"head", "worker"} and len(set(state["nodes"].values())) == 2
    assert state["nearline_actors"] == {"head": 1, "worker": 1}  # pool of 2 actors x 1 CPU on nodes of 1 CPU
    batches = state["nearline_batches"]  # Ray Data `submit` calls: 6 chunks, at most 2 in flight per actor
    assert batches.get("head", 0) >= 1 and batches.get("worker", 0) >= 1, batches
    assert state["serve_replicas"] == {"head": 1, "worker": 1}
    assert state["serve_proxies"] == {"head": 1, "worker": 1}  # a proxy on every node with a replica
    assert report["nearline"]["users"] == USERS and report["nearline"]["written"] == USERS
    assert report["store"] == {"users": USERS, "with_cot": USERS, "with_answer": USERS, "with_vector": USERS}


@heavy
def test_the_app_answers_over_http_from_the_cluster(report):
    answers = report["answers"]
    assert [a["status"] for a in answers] == [200] * len(answers)
    assert {a["arm"] for a in answers} == {"direct", "reasoning"}
    assert {a["path"] for a in answers if a["arm"] == "reasoning"} == {"cached_vector"}  # the nearline's vectors
    assert all(a["items"] and set(a["items"]) <= CATALOG for a in answers)


@heavy
def test_token_auth_is_on_and_the_http_port_is_loopback_only(report):
    assert report["dashboard_auth"] == {"without_token": 401, "with_token": 200}
    assert report["driver_with_wrong_token"].startswith(("refused", "no connection"))
    if shutil.which("ss") is None:
        pytest.skip("`ss` (iproute2) is not installed: no socket measurement")
    port = int(report["http"].rsplit(":", 1)[1])
    http = [s for s in report["sockets"] if s["port"] == port]
    assert len(http) == 2 and {s["scope"] for s in http} == {"loopback"}  # two proxies share it (SO_REUSEPORT)
    processes = {s["process"] for s in report["sockets"]}
    assert {"gcs_server", "raylet"} <= processes, processes
    gcs = report["ports"]["head"]["gcs"]
    (gcs_socket,) = [s for s in report["sockets"] if s["port"] == gcs and s["process"] == "gcs_server"]
    # deploy/README.md ("What Ray exposes") documents this measurement: update it when Ray stops doing so
    assert gcs_socket["scope"] == "all interfaces", gcs_socket


@heavy
def test_every_process_of_the_cluster_was_stopped(report):
    assert report["processes_stopped"] > 0 and report["processes_left"] == 0


# ---- fast: no Ray ------------------------------------------------------------------------------------------


def multinode_script() -> types.ModuleType:
    """deploy/multinode.py as a module (it starts nothing on import)."""
    spec = importlib.util.spec_from_file_location("multinode", ROOT / "deploy" / "multinode.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_multinode_script_calls_the_clis_with_options_they_know(tmp_path):
    """The commands of deploy/multinode.py name options the CLIs know (the real run: the heavy tests above)."""
    import typer.main

    from training.cli import app

    commands = typer.main.get_command(app).commands
    script = multinode_script()
    args = script.build_parser().parse_args(["--policy", "p", "--reasoning-policy", "r", "--rechead", "h"])
    nearline = script.nearline_command(args, "127.0.0.1:6399", "redis://127.0.0.1:1/0", tmp_path / "ids", 8)
    serve = script.serve_command(args, "127.0.0.1:6399", "redis://127.0.0.1:1/0", 8123)
    assert nearline[2:5] == ["training.cli", "nearline", "run"] and serve[2:4] == ["training.cli", "serve"]
    for command, cli in ((nearline[5:], commands["nearline"].commands["run"]), (serve[4:], commands["serve"])):
        used, known = {x for x in command if x.startswith("--")}, {opt for p in cli.params for opt in p.opts}
        assert used <= known, used - known
        assert command[command.index("--ray-address") + 1] == "127.0.0.1:6399"
    overrides = [x for x in serve[4:] if "=" in x and not x.startswith("-")]
    settings = ServeSettings.from_yaml(ROOT / "deploy" / "serve.yaml", overrides)
    assert (settings.host, settings.port, settings.feedback_log) == ("127.0.0.1", 8123, "redis")


@ON_PROC
def test_multinode_script_stops_its_own_processes_only(tmp_path):
    """By pid, found by the marker in the environment, by a file held open under its root, and as their children;
    a process of someone else is left alone (`ray stop` would end every Ray of the user)."""
    script = multinode_script()
    root = tmp_path / "rrmn"
    root.mkdir()
    cluster = script.LoopbackCluster(root, {}, script.free_ports(script.LoopbackCluster.PORTS_NEEDED))
    marked = subprocess.Popen(["sh", "-c", "sleep 60 & wait"], env={script.MARKER: str(root), "PATH": "/usr/bin:/bin"})
    with (root / "log").open("w") as log:
        holding = subprocess.Popen(["sleep", "60"], stdout=log)
    other = subprocess.Popen(["sleep", "60"])
    try:
        deadline = time.monotonic() + 10
        while len(cluster.pids()) < 3 and time.monotonic() < deadline:  # sh, its sleep child, the log holder
            time.sleep(0.05)
        assert {marked.pid, holding.pid} <= set(cluster.pids()) and other.pid not in cluster.pids()
        assert cluster.stop(grace_s=5) == 3
        assert cluster.pids() == [] and marked.wait(5) is not None and holding.wait(5) is not None
        assert other.poll() is None
    finally:
        for process in (marked, holding, other):
            process.kill()
            process.wait(5)
