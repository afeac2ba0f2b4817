"""A real two-node Ray cluster on one machine (loopback): the nearline job and the Serve app run on it, and Ray's
state API shows that work landed on both nodes.

    python deploy/multinode.py --policy runs/sft/bundle --reasoning-policy runs/reasoning/bundle \\
        --rechead runs/rechead_demo-ml-100k-temporal/bundle --split-dir data/splits/ml-100k-temporal

1. redis-server on a free loopback port; the users' training histories are loaded;
2. `ray start --head` and `ray start --address` (1 CPU each, each its own --temp-dir, every port chosen free and
   every node address 127.0.0.1, token authentication with a throw-away token that is never printed);
3. `reasonrec nearline run --ray-address ... --pool-size 2 --actor-cpus 1`: one vLLM actor fits on each node, and
   the pool waits for both before its first batch (RAY_DATA_DEFAULT_WAIT_FOR_MIN_ACTORS_S), so both reason;
4. `reasonrec serve --ray-address ... --replicas 2 --replica-cpus 1`: one replica (and one HTTP proxy, sharing the
   loopback port through SO_REUSEPORT) per node; recommend calls over HTTP;
5. Ray's state API: nodes, actors and tasks by node; the listening sockets of the cluster's processes (`ss -ltnp`)
   and their bind addresses; the dashboard without / with the token;
6. stops the serve driver, then every process of this cluster by pid, then Redis, also when a step fails.
   (Not `ray stop`: it stops every Ray of this user on the machine, other people's clusters included.)

Prints a summary; `--json-out F` also writes it as JSON (tests/deploy/test_multinode.py reads it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file: `python deploy/multinode.py`
    sys.path.insert(0, str(ROOT))

from feature_store.local_redis import RedisServer, free_ports  # noqa: E402

MARKER = "REASONREC_MULTINODE_RUN"  # in the environment of every process of the cluster: how stop() finds them
NODE_PORT_OPTIONS = ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
                     "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port")
ALL_INTERFACES = ("0.0.0.0", "*", "[::]", "::")
LOOPBACK = ("127.0.0.1", "[::1]", "::1", "localhost", "[::ffff:127.0.0.1]")


class LoopbackCluster:
    """A Ray head and one worker node on 127.0.0.1, each with `cpus` CPUs and its own --temp-dir under `root`."""

    PORTS_NEEDED = 3 + 2 * len(NODE_PORT_OPTIONS)

    def __init__(self, root: Path, env: dict[str, str], ports: list[int], cpus: int = 1,
                 object_store_bytes: int = 300_000_000):
        """`ports`: PORTS_NEEDED distinct free ports from one `free_ports` draw (separate draws can repeat a port,
        and Ray refuses to start when two of its components get the same one)."""
        self.root, self.env, self.cpus, self.store_bytes = root, env, cpus, object_store_bytes
        self.ray = str(Path(sys.executable).with_name("ray"))
        self.gcs_port, self.dashboard_port, self.client_port, *node_ports = ports
        self.node_ports = iter(node_ports)
        self.ports: dict[str, dict[str, int]] = {}

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def _start(self, name: str, first: list[str], timeout_s: float = 120) -> None:
        ports = {option: next(self.node_ports) for option in NODE_PORT_OPTIONS}
        self.ports[name] = {option.strip("-"): port for option, port in ports.items()}
        command = [self.ray, "start", *first, "--node-ip-address", "127.0.0.1", "--num-cpus", str(self.cpus),
                   "--object-store-memory", str(self.store_bytes), "--temp-dir", str(self.root / name),
                   "--disable-usage-stats", *[str(x) for pair in ports.items() for x in pair]]
        result = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=timeout_s)
        if result.returncode != 0:
            raise RuntimeError(f"`ray start` of the {name} failed:\n{result.stdout[-1500:]}{result.stderr[-1500:]}")

    def start(self) -> None:
        self._start("head", ["--head", "--port", str(self.gcs_port), "--ray-client-server-port", str(self.client_port),
                             "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
                             "--dashboard-port", str(self.dashboard_port)])
        self.ports["head"] |= {"gcs": self.gcs_port, "dashboard": self.dashboard_port,
                               "ray-client-server": self.client_port}
        self._start("worker", ["--address", self.address])

    def pids(self) -> list[int]:
        """Every live process of this cluster: the marker in its environment, its command line or a file it holds
        open under `root` (Ray's log files; setproctitle can overwrite a worker's environment), and their children."""
        mark, root, found, parents = f"{MARKER}={self.root}".encode() + b"\0", f"{self.root}{os.sep}", set(), {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            pid = int(entry.name)
            try:
                state, parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
                if state == "Z":  # a zombie holds nothing; its parent (or init) reaps it
                    continue
                parents[pid] = int(parent)
                if (mark in (entry / "environ").read_bytes() or root.encode() in (entry / "cmdline").read_bytes()
                        or any(os.readlink(fd).startswith(root) for fd in (entry / "fd").iterdir())):
                    found.add(pid)
            except (OSError, IndexError, ValueError):
                continue
        grown = True
        while grown:
            children = {pid for pid, parent in parents.items() if parent in found} - found
            found |= children
            grown = bool(children)
        return sorted(found)

    def stop(self, grace_s: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after `grace_s`, to every process of this cluster; returns how many there were."""
        seen: set[int] = set()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = set(self.pids())  # again before SIGKILL: a raylet may have started a worker meanwhile
            if not pids:
                break
            seen |= pids
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + grace_s
            while self.pids() and time.monotonic() < deadline:
                time.sleep(0.2)
        return len(seen)


def listening_sockets(pids: set[int]) -> list[dict]:
    """TCP sockets in LISTEN state owned by `pids` (`ss -ltnpH`): process name, bind address, port."""
    try:
        out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    found = []
    for line in out.splitlines():
        fields = line.split()
        owners = re.findall(r'\("([^"]+)",pid=(\d+)', line)
        if len(fields) < 4 or not owners:
            continue
        host, _, port = fields[3].rpartition(":")
        for name, pid in owners:
            if int(pid) in pids:
                found.append({"process": process_role(int(pid), name), "pid": int(pid), "address": host,
                              "port": int(port), "scope": "all interfaces" if host in ALL_INTERFACES else
                              "loopback" if host in LOOPBACK else "host address"})
    return sorted(found, key=lambda s: (s["process"], s["port"]))


def process_role(pid: int, name: str) -> str:
    """`name` (the kernel's 15-character comm), or for a plain python process the script or module it runs."""
    if name != "python" and not name.startswith("python3"):
        return name
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return name
    for i, arg in enumerate(args[1:], 1):
        if arg == "-m" and i + 1 < len(args):
            return f"python -m {args[i + 1]}"
        if arg.endswith(".py"):
            return f"python {Path(arg).name}"
    return name


def load_histories(url: str, split_dir: Path) -> list[str]:
    from feature_store.materialize import histories_from_split, materialize_histories
    from feature_store.store import FeatureStore

    histories = list(histories_from_split(split_dir))
    with FeatureStore(url, namespace="reasonrec") as store:
        materialize_histories(store, histories, updated_at=time.time())
    return [user for user, _ in histories]


def nearline_command(args, address: str, url: str, ids: Path, n_users: int) -> list[str]:
    """`reasonrec nearline run` on the cluster: 2 vLLM actors of 1 CPU (one per node), 4 chunks."""
    return [sys.executable, "-m", "training.cli", "nearline", "run", "--bundle", str(args.reasoning_policy),
            "--users", str(ids), "--job-id", f"multinode-{int(time.time())}", "--url", url,
            "--ray-address", address, "--runner", "ray", "--pool-size", "2", "--actor-cpus", "1",
            "--chunk-size", str(max(1, n_users // 4)), "--max-think-tokens", str(args.max_think_tokens),
            "--rechead", str(args.rechead), "--json"]


def serve_command(args, address: str, url: str, port: int) -> list[str]:
    """`reasonrec serve` on the cluster: 2 replicas of 1 CPU (one per node), on 127.0.0.1:`port`."""
    overrides = [f"redis_url={url}", f"port={port}", "host=127.0.0.1", f"bundles.sft={args.policy}",
                 f"bundles.rechead={args.rechead}", "feedback_log=redis", "request_timeout_s=30"]
    return [sys.executable, "-m", "training.cli", "serve", "--config", str(args.config), "--ray-address", address,
            "--replicas", "2", "--replica-cpus", "1", *overrides]


def run_nearline(args, cluster: LoopbackCluster, url: str, users: list[str]) -> dict:
    ids = cluster.root / "users.txt"
    ids.write_text("\n".join(users) + "\n")
    result = subprocess.run(nearline_command(args, cluster.address, url, ids, len(users)), env=cluster.env,
                            cwd=ROOT, capture_output=True, text=True, timeout=args.step_timeout,
                            start_new_session=True)
    if result.returncode != 0:
        raise RuntimeError(f"the nearline job failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout[result.stdout.index("{"):])


def start_serve(args, cluster: LoopbackCluster, url: str, port: int) -> subprocess.Popen:
    log = (cluster.root / "serve.log").open("w")
    return subprocess.Popen(serve_command(args, cluster.address, url, port), env=cluster.env, cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(base: str, process: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"`reasonrec serve` exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"{base}/readyz not 200 after {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


def stop_serve(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # `reasonrec serve` then runs serve.shutdown()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def recommend_calls(base: str, user: str, n: int) -> list[dict]:
    """One direct and one reasoning call for `user`, then `n` more alternating, each reduced to what it says."""
    answers = []
    with httpx.Client(base_url=base, timeout=60) as http:
        for i in range(n + 2):
            arm = ("direct", "reasoning")[i % 2]
            response = http.post("/v1/recommend", json={"user_id": user, "k": 5}, headers={"X-Reasonrec-Arm": arm})
            body = response.json()
            answers.append({"status": response.status_code, "arm": body.get("arm"), "path": body.get("path"),
                            "fallback": body.get("fallback"), "items": [x["item_id"] for x in body.get("items", [])]})
    return answers


def by_node(rows, nodes: dict[str, str]) -> dict[str, int]:
    """How many of `rows` (state API records) ran on each node, by role (head / worker)."""
    return dict(Counter(nodes.get(row.node_id, row.node_id) for row in rows))


def cluster_state(cluster: LoopbackCluster) -> dict:
    """Nodes, and the actors and tasks of the nearline job and the Serve app per node (Ray's state API)."""
    from ray.util.state import list_actors, list_nodes, list_tasks

    address = cluster.address
    nodes = {n.node_id: "head" if n.is_head_node else "worker" for n in list_nodes(address=address)}
    actors = list_actors(address=address, limit=10_000, raise_on_missing_output=False)
    tasks = list_tasks(address=address, limit=10_000, raise_on_missing_output=False,
                       filters=[("type", "=", "ACTOR_TASK")])
    nearline_actors = [a for a in actors if "ReasonerActor" in a.class_name or "MapWorker" in a.class_name]
    return {"nodes": {role: node for node, role in nodes.items()},
            "nearline_actors": by_node(nearline_actors, nodes),
            "nearline_batches": by_node([t for t in tasks if "ReasonerActor" in t.name and t.name.endswith(".submit")],
                                        nodes),
            "serve_replicas": by_node([a for a in actors if a.class_name.startswith("ServeReplica")
                                       and a.state == "ALIVE"], nodes),
            "serve_proxies": by_node([a for a in actors if a.class_name == "ProxyActor" and a.state == "ALIVE"],
                                     nodes),
            "serve_controller": by_node([a for a in actors if a.class_name == "ServeController"
                                         and a.state == "ALIVE"], nodes)}


def dashboard_auth(cluster: LoopbackCluster, token: str) -> dict[str, int]:
    """HTTP status of a state API call to the dashboard without and with the token."""
    path = f"{cluster.dashboard}/api/v0/nodes"
    return {"without_token": httpx.get(path, timeout=30).status_code,
            "with_token": httpx.get(path, headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code}


def driver_with_wrong_token(cluster: LoopbackCluster, timeout_s: float = 60) -> str:
    """What `ray.init(address)` says with a wrong token (expected: refused)."""
    env = cluster.env | {"RAY_AUTH_TOKEN": secrets.token_hex(32)}
    code = f"import ray; ray.init(address={cluster.address!r}, log_to_driver=False); print('CONNECTED')"
    try:
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                timeout=timeout_s, start_new_session=True)
    except subprocess.TimeoutExpired:
        return f"no connection within {timeout_s:.0f} s"
    if "CONNECTED" in result.stdout:
        return "connected"
    lines = [ln for ln in result.stderr.splitlines() if re.search(r"auth|token|Unauthenticated|denied", ln, re.I)]
    return f"refused (exit {result.returncode}): {(lines or result.stderr.splitlines() or [''])[-1][:200]}"


def store_rows(url: str, users: list[str]) -> dict[str, int]:
    from feature_store.store import FeatureStore

    with FeatureStore(url, namespace="reasonrec") as store:
        rows = store.read(users)
    return {"users": len(users), "with_cot": sum(bool(r and r.get("cot")) for r in rows),
            "with_answer": sum(bool(r and r.get("answer")) for r in rows),
            "with_vector": sum(bool(r and r.get("user_vector")) for r in rows)}


def run(args) -> dict:
    """Every step; the processes it starts are stopped on the way out, also on failure."""
    token = secrets.token_hex(32)
    root = Path(tempfile.mkdtemp(prefix="rrmn-", dir="/tmp"))  # short: Ray's unix socket paths must fit 107 bytes
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")}
    # The nearline's actor pool waits for both actors before its first batch: otherwise the actor that is up first
    # may take every batch (measured once: 6 batches on the worker, none on the slower head).
    autoscaler_metric_port, dashboard_metric_port, http_port, *cluster_ports = free_ports(
        3 + LoopbackCluster.PORTS_NEEDED)
    env |= {MARKER: str(root), "AUTOSCALER_METRIC_PORT": str(autoscaler_metric_port),
            "DASHBOARD_METRIC_PORT": str(dashboard_metric_port),
            "RAY_DATA_DEFAULT_WAIT_FOR_MIN_ACTORS_S": "600", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token,
            "RAY_USAGE_STATS_ENABLED": "0",
            "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1"), "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))}
    os.environ.update({k: env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_USAGE_STATS_ENABLED")})
    cluster, report, seconds, serve = LoopbackCluster(root, env, cluster_ports), {}, {}, None
    t0 = time.monotonic()
    with RedisServer() as redis:
        try:
            users = load_histories(redis.url, args.split_dir)[:args.users]
            cluster.start()
            seconds["cluster_start"] = time.monotonic() - t0
            report["nearline"] = run_nearline(args, cluster, redis.url, users)
            seconds["nearline"] = time.monotonic() - t0 - sum(seconds.values())
            report["store"] = store_rows(redis.url, users)
            port = http_port
            serve = start_serve(args, cluster, redis.url, port)
            base = f"http://127.0.0.1:{port}"
            wait_ready(base, serve, root / "serve.log", args.step_timeout)
            seconds["serve_ready"] = time.monotonic() - t0 - sum(seconds.values())
            report["http"] = base
            report["answers"] = recommend_calls(base, users[0], args.calls)
            report["state"] = cluster_state(cluster)
            report["sockets"] = listening_sockets(set(cluster.pids()))
            report["dashboard_auth"] = dashboard_auth(cluster, token)
            report["driver_with_wrong_token"] = driver_with_wrong_token(cluster)
            report["ports"] = cluster.ports
        except BaseException:
            print(f"multinode: failed; the Ray logs stay under {root}", file=sys.stderr)
            raise
        finally:
            if serve is not None:
                stop_serve(serve)
            report["processes_stopped"] = cluster.stop()
            report["processes_left"] = len(cluster.pids())
            seconds["total"] = time.monotonic() - t0
            report["seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    if not report["processes_left"]:
        shutil.rmtree(root, ignore_errors=True)
    return report


def summary_lines(report: dict) -> list[str]:
    state, nearline = report["state"], report["nearline"]
    lines = [f"nodes: head {state['nodes'].get('head')}, worker {state['nodes'].get('worker')}",
             f"nearline actors by node {state['nearline_actors']}, batches they reasoned {state['nearline_batches']}; "
             f"{nearline['users']} users in {nearline['chunks']} chunks, {report['store']['with_cot']} CoTs and "
             f"{report['store']['with_vector']} user vectors in Redis",
             f"serve replicas by node {state['serve_replicas']}, proxies {state['serve_proxies']}, "
             f"controller {state['serve_controller']}",
             "answers: " + "; ".join(f"{a['arm']} {a['status']} path={a['path']} items={a['items']}"
                                     for a in report["answers"][:2]),
             f"dashboard state API: {report['dashboard_auth']} (HTTP status without / with the token); "
             f"a driver with a wrong token: {report['driver_with_wrong_token']}"]
    scopes = Counter((s["process"], s["scope"]) for s in report["sockets"])
    lines.append("listening sockets: " + ", ".join(f"{p} {n}x {scope}" for (p, scope), n in sorted(scopes.items())))
    lines.append(f"stopped {report['processes_stopped']} processes ({report['processes_left']} left); "
                 f"seconds {report['seconds']}")
    return lines


def build_parser() -> argparse.ArgumentParser:
    """The script's options; the defaults are what `make demo` builds (run from the repository root)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", type=Path, default=Path("runs/sft/bundle"), help="direct-mode bundle")
    parser.add_argument("--reasoning-policy", type=Path, default=Path("runs/reasoning/bundle"))
    parser.add_argument("--rechead", type=Path, default=Path("runs/rechead_demo-ml-100k-temporal/bundle"))
    parser.add_argument("--split-dir", type=Path, default=Path("data/splits/ml-100k-temporal"))
    parser.add_argument("--config", type=Path, default=ROOT / "deploy" / "serve.yaml")
    parser.add_argument("--users", type=int, default=8, help="users the nearline job reasons over")
    parser.add_argument("--max-think-tokens", type=int, default=32)
    parser.add_argument("--calls", type=int, default=8, help="recommend calls after the first two")
    parser.add_argument("--step-timeout", type=float, default=300, help="seconds for the nearline job, for Serve")
    parser.add_argument("--json-out", type=Path, default=None)
    return parser


def main() -> None:
    args = build_parser().parse_args()
    for name in ("policy", "reasoning_policy", "rechead", "split_dir", "config"):  # the children run in ROOT
        setattr(args, name, getattr(args, name).resolve())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `finally` stops the cluster on a SIGTERM too
    report = run(args)
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=1))
    print("\n".join(summary_lines(report)))


if __name__ == "__main__":
    main()
