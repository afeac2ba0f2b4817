"""The serving benchmark: locust over loopback HTTP against the Ray Serve app, and the same models in-process.

    python -m loadtests.run                                    # ~12 min on 2 cores -> reports/serving.*
    python -m loadtests.run --users 1,8 --duration 10 --scenarios direct_native --out-dir /tmp/rep

What it does, in one process (everything on 127.0.0.1, stopped at the end even on error):

1. a throwaway redis-server on a free port (tests/redis_server.py); every ML-100k training history
   (`histories_from_split`) written to it; `--n-users` sampled users also get a CoT and an answer from the
   programmatic teacher, and their Rechead user vector is computed and cached (`compute_user_vectors`);
2. in this process: `NativeDirectEngine` behind a `MicroBatcher` with the serve settings' batching,
   `VLLMDirectEngine` (a second vLLM engine) and `ReasoningService` (Redis -> cached vector -> FAISS);
3. the app (`serving.deployments.start`) with arms `direct_native`, `direct_vllm` (engine vllm) and
   `reasoning`, on a free loopback port; waits for /readyz, checks one request per scenario and that every
   reasoning user is answered from its cached vector;
4. per scenario and concurrency: the in-process closed loop (N asyncio clients, `--inprocess-duration` s),
   then locust headless (N users, no think time, `--duration` s, loadtests/locustfile.py) while the in-process
   models sit idle; never both at once. The first `--warmup` s of each run are left out of latency and rps.
   Error rate counts every request of the run.

Rows (REPORTS.md): `<scenario>_c<N>` (HTTP), `<scenario>_inprocess_c<N>`, `<scenario>_ratio_c<N>` (HTTP over
in-process at the same N: `ratio` of p50s, `ratio_mean` of means, `overhead_p50_ms`), per scenario in
(`direct_native`, `direct_vllm`, `reasoning_cached`). CPU per request comes from psutil (the replica with its
children and the Serve proxy for HTTP, locust separately; this process with its vLLM child in-process).
Targets: direct HTTP ratio <= 1.2 at N=8, reasoning_cached p99 <= 20 ms, no errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
SCENARIOS = ("direct_native", "direct_vllm", "reasoning_cached")
USER_CLASS = {"direct_native": "DirectNativeUser", "direct_vllm": "DirectVLLMUser",
              "reasoning_cached": "ReasoningCachedUser"}
ARMS = {"direct_native": "direct_native", "direct_vllm": "direct_vllm", "reasoning_cached": "reasoning"}
EXPECTED_PATH = {"direct_native": "beam_search", "direct_vllm": "beam_search", "reasoning_cached": "cached_vector"}
RATIO_TARGET, REASONING_P99_TARGET_MS = 1.2, 20.0
NAMESPACE = "loadtest"
ENV = {"RAY_USAGE_STATS_ENABLED": "0", "VLLM_NO_USAGE_STATS": "1", "HF_HUB_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false", "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1",
       "VLLM_HOST_IP": "127.0.0.1"}
Sample = list  # [start unix s, latency ms, ok, server ms | None, path ok | None]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=REPO_ROOT / "deploy/serve.yaml", help="base serve settings")
    p.add_argument("--sft", type=Path, default=REPO_ROOT / "runs/sft/bundle", help="policy bundle (direct mode)")
    p.add_argument("--rechead", type=Path, default=REPO_ROOT / "runs/rechead_programmatic-ml-100k-temporal/bundle",
                   help="Rechead bundle (reasoning mode)")
    p.add_argument("--split", type=Path, default=REPO_ROOT / "data/splits/ml-100k-temporal")
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--users", default="1,8,32", help="concurrent users per run, comma-separated")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of each locust run")
    p.add_argument("--inprocess-duration", type=float, default=12.0, help="seconds of each in-process run")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds at the start of a run left out of latency")
    p.add_argument("--settle", type=float, default=2.0, help="pause before each run (the last one's leftovers)")
    p.add_argument("--n-users", type=int, default=200, help="sampled ML-100k users (histories, reasoning rows)")
    p.add_argument("--history-len", type=int, default=50, help="direct requests send the last N items")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--threads", type=int, default=1, help="torch threads here and CPUs of the Serve replica")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=None, help="default runs/loadtests/<UTC time>")
    p.add_argument("--out-dir", type=Path, default=REPO_ROOT / "reports")
    p.add_argument("--report", default="serving", help="report name: <out-dir>/<report>.md/.json/_latency.png")
    p.add_argument("--profile", action=argparse.BooleanOptionalAction, default=True,
                   help="after the benchmark, the layer-by-layer profile (loadtests/profile.py)")
    p.add_argument("--profile-users", default="1,8", help="concurrent users of the profile runs")
    p.add_argument("--profile-duration", type=float, default=12.0, help="seconds of each profile locust run")
    p.add_argument("--profile-inprocess-duration", type=float, default=8.0)
    p.add_argument("--pyspy-seconds", type=float, default=10.0, help="0: no py-spy")
    p.add_argument("--render", type=Path, default=None, metavar="WORKDIR",
                   help="measure nothing: rewrite the report from WORKDIR/rows.json and facts.json (after editing "
                        "--notes); pass the options of that run")
    p.add_argument("--notes", type=Path, default=Path(__file__).resolve().parent / "serving_notes.md",
                   help="markdown appended to the report's notes when the file exists (the profile)")
    return p.parse_args(argv)


# ---- statistics ---------------------------------------------------------------------------------------------------

def summarize(samples: list[Sample], warmup_s: float) -> dict:
    """Latency (ms, linear-interpolated percentiles) and rps over the samples that started after the warm-up;
    requests, errors and error rate over all of them."""
    if not samples:
        return {"requests": 0, "errors": 0, "error_rate": None}
    first = min(s[0] for s in samples)
    window = [s for s in samples if s[0] >= first + warmup_s] or samples
    begin = first + warmup_s if len(window) < len(samples) else first
    end = max(s[0] + s[1] / 1000 for s in window)
    lat = np.array([s[1] for s in window])
    ok = sum(1 for s in window if s[2])
    errors = sum(1 for s in samples if not s[2])
    out = {"requests": len(samples), "rps": round(ok / max(end - begin, 1e-9), 1),
           "p50_ms": _r(np.percentile(lat, 50)), "p95_ms": _r(np.percentile(lat, 95)),
           "p99_ms": _r(np.percentile(lat, 99)), "mean_ms": _r(lat.mean()),
           "errors": errors, "error_rate": round(errors / len(samples), 5),
           "path_mismatch": sum(1 for s in samples if s[4] is False)}
    server = np.array([s[3] for s in window if s[3] is not None])
    if server.size:
        out["server_p50_ms"], out["server_p99_ms"] = _r(np.percentile(server, 50)), _r(np.percentile(server, 99))
    return out


def _r(x: float) -> float:
    return round(float(x), 2)


# ---- CPU accounting -----------------------------------------------------------------------------------------------

def cpu_seconds(processes: Sequence) -> float:
    """user + system seconds of the live processes among `processes` (psutil.Process)."""
    import psutil

    total = 0.0
    for proc in processes:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (every process, ours and other jobs')."""
    import psutil

    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def serve_processes() -> dict[str, list]:
    """Our Serve replica (with its children: the vLLM engine core) and our Serve proxy, found among this
    process's descendants by the titles Ray gives them."""
    import psutil

    groups: dict[str, list] = {"replica": [], "proxy": []}
    for proc in psutil.Process().children(recursive=True):
        try:
            title = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if "ServeReplica:reasonrec" in title:
            groups["replica"] += [proc, *proc.children(recursive=True)]
        elif "ProxyActor" in title:
            groups["proxy"].append(proc)
    return groups


def idle_cores(groups: dict[str, list], seconds: float = 5.0) -> float:
    """CPU cores the processes of `groups` burn with no request in flight (Ray's own polling, metrics, health
    checks): measured over `seconds` after a 1 s pause."""
    time.sleep(1.0)
    procs = [p for group in groups.values() for p in group]
    before = cpu_seconds(procs)
    time.sleep(seconds)
    return (cpu_seconds(procs) - before) / seconds


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# ---- the in-process side --------------------------------------------------------------------------------------------

class BenchLoop:
    """One event loop in a daemon thread for every in-process call (vLLM's AsyncLLM keeps to its first loop)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bench-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Awaitable, timeout_s: float | None = None):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


async def closed_loop(call: Callable[[object], Awaitable[bool | None]], inputs: Sequence, concurrency: int,
                      seconds: float, seed: int = 0) -> tuple[list[Sample], list[str]]:
    """`concurrency` clients, each calling `call(random input)` one after another for `seconds`.

    `call` returns whether the answer took the expected path (None: not checked); raising counts as an error."""
    samples: list[Sample] = []
    failures: list[str] = []
    end = time.perf_counter() + seconds
    rng = random.Random(seed)

    async def client() -> None:
        while time.perf_counter() < end:
            arg = rng.choice(inputs)
            started, t0 = time.time(), time.perf_counter()
            ok, path_ok = True, None
            try:
                path_ok = await call(arg)
            except Exception as err:  # noqa: BLE001 - counted as an error, the first few are reported
                ok = False
                failures.append(f"{type(err).__name__}: {err}"[:200])
            samples.append([started, 1000 * (time.perf_counter() - t0), ok, None, path_ok])

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return samples, failures


@dataclass
class InProcess:
    """The models of the three scenarios, loaded in this process, and the calls the pipeline would make."""

    settings: object
    native: object
    vllm: object
    reasoning: object
    batcher: object = None
    engine_children: list = field(default_factory=list)
    k: int = 10
    batch_sizes: list = field(default_factory=list)  # of the native engine's batches, reset per run

    async def start(self) -> None:
        from serving.engine.batcher import MicroBatcher

        s = self.settings.engine
        def recommend_batch(queries):
            self.batch_sizes.append(len(queries))
            return self.native.recommend_batch(queries)

        self.batcher = MicroBatcher(recommend_batch, s.max_batch_size, s.batch_wait_ms, s.max_queue,
                                    s.retry_after_s, name="native-inprocess")
        if self.vllm is not None:  # binds the AsyncLLM to the bench loop, as warm_async does in the replica
            await self.vllm.warm_async()

    def call(self, scenario: str) -> Callable[[object], Awaitable[bool | None]]:
        timeout = self.settings.request_timeout_s
        if scenario == "direct_native":
            async def native(query):
                await self.batcher.submit(query, timeout)
            return native
        if scenario == "direct_vllm":
            async def vllm(query):
                await asyncio.wait_for(self.vllm.recommend(query), timeout)
            return vllm

        async def reasoning(user_id):
            result = await asyncio.wait_for(self.reasoning.recommend(user_id, None, self.k, True, "direct", False),
                                            timeout)
            return result.path == "cached_vector"
        return reasoning

    def processes(self) -> list:
        import psutil

        return [psutil.Process(), *self.engine_children]

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
        if self.vllm is not None:
            self.vllm.shutdown()
            self.vllm = None


# ---- set-up ---------------------------------------------------------------------------------------------------------

def sample_users(split: Path, n: int, seed: int) -> tuple[dict[str, list[str]], list[str]]:
    """Every training history of the split, and `n` sampled user ids among them."""
    from feature_store.materialize import histories_from_split

    histories = dict(histories_from_split(split, "train"))
    return histories, random.Random(seed).sample(sorted(histories), min(n, len(histories)))


ALL_ARMS = (
    {"name": "direct_native", "mode": "direct", "engine": "native", "bundle": "sft", "weight": 1},
    {"name": "direct_vllm", "mode": "direct", "engine": "vllm", "bundle": "sft", "weight": 1},
    {"name": "reasoning", "mode": "reasoning", "bundle": "rechead", "weight": 1},
)


def serve_settings(args: argparse.Namespace, port: int, redis_url: str, workdir: Path,
                   arms: Sequence[str] = ("direct_native", "direct_vllm", "reasoning")):
    """deploy/serve.yaml's settings with `arms` over our bundles, on 127.0.0.1:port and our Redis."""
    from serving.settings import ServeSettings

    raw = ServeSettings.from_yaml(args.config).model_dump(mode="json")
    raw.update(host="127.0.0.1", port=port, redis_url=redis_url, namespace=NAMESPACE,
               feedback_log=str(workdir / "feedback.jsonl"),
               bundles={"sft": str(args.sft), "rechead": str(args.rechead)},
               experiments=[{"name": "loadtest", "salt": "loadtest-v1",
                             "arms": [a for a in ALL_ARMS if a["name"] in arms]}])
    return ServeSettings.model_validate(raw)


def seed_redis(redis_url: str, histories: dict[str, list[str]], reasoning_users: list[str], service) -> int:
    """All histories; for `reasoning_users` also a programmatic CoT + answer, then their cached user vectors.
    Returns how many vectors were written."""
    from feature_store.materialize import materialize, materialize_histories
    from feature_store.schema import encode_history
    from feature_store.store import FeatureStore
    from training.data.types import Sample as DataSample
    from training.reasoning.features import build_teacher, teacher_spec

    store = FeatureStore(redis_url, NAMESPACE)
    now = time.time()
    materialize_histories(store, histories.items(), now)
    teacher = build_teacher(teacher_spec("programmatic"), service.catalog)
    rows = []
    for user in reasoning_users:
        history = histories[user]
        cot = teacher.write(DataSample(user, user, tuple(history), ""), target=None)
        answer = [cot.recommended_item] if cot.recommended_item in service.catalog else []
        rows.append((user, {"history": encode_history(history), "cot": cot.text(), "answer": json.dumps(answer)}))
    materialize(store, rows, now + 1)
    written = service.compute_user_vectors(store, reasoning_users)
    store.close()
    return written


def wait_ready(url: str, timeout_s: float = 300) -> None:
    import httpx

    deadline, last = time.monotonic() + timeout_s, ""
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{url}/readyz", timeout=5)
            if response.status_code == 200:
                return
            last = response.text[:300]
        except httpx.HTTPError as err:
            last = str(err)
        time.sleep(1)
    raise RuntimeError(f"{url}/readyz not ready within {timeout_s:g} s: {last}")


def check_paths(url: str, data: dict, scenarios: Sequence[str] = SCENARIOS) -> dict[str, int]:
    """Five requests per direct arm, one per reasoning user: how many answered by another path than expected."""
    import httpx

    bad = {}
    with httpx.Client(base_url=url, timeout=30) as client:
        for scenario in scenarios:
            if scenario == "reasoning_cached":
                bodies = [{"user_id": u, "k": data["k"], "mode": "reasoning"} for u in data["reasoning"]]
            else:
                bodies = [{"user_id": d["user_id"], "history": d["history"], "k": data["k"], "mode": "direct"}
                          for d in data["direct"][:5]]
            wrong = 0
            for body in bodies:
                r = client.post("/v1/recommend", json=body, headers={"X-Reasonrec-Arm": ARMS[scenario]})
                if r.status_code != 200:
                    raise RuntimeError(f"{scenario}: HTTP {r.status_code} {r.text[:300]}")
                wrong += r.json()["path"] != EXPECTED_PATH[scenario]
            bad[scenario] = wrong
    return bad


# ---- runs -----------------------------------------------------------------------------------------------------------

def run_locust(url: str, scenario: str, users: int, args: argparse.Namespace, data_path: Path,
               workdir: Path, tag: str | None = None,
               groups: dict[str, list] | None = None) -> tuple[list[Sample], dict]:
    """One headless locust run; its samples and CPU seconds of each process group (default: the Serve replica
    and proxy), of locust and of the whole machine."""
    tag = tag or f"{scenario}_c{users}"
    samples_path, log_path = workdir / f"{tag}.samples.json", workdir / f"{tag}.locust.log"
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", str(users), "-r", str(users),
           "-t", f"{args.duration:g}s", "--host", url, "--csv", str(workdir / tag), "--only-summary",
           "--stop-timeout", "5", "--exit-code-on-error", "0", "--loglevel", "WARNING",
           "--loadtest-data", str(data_path), "--loadtest-samples", str(samples_path), USER_CLASS[scenario]]
    time.sleep(args.settle)
    groups = serve_processes() if groups is None else groups
    before = {name: cpu_seconds(procs) for name, procs in groups.items()}
    client0, machine0, wall0 = children_cpu_s(), machine_busy_s(), time.perf_counter()
    with log_path.open("w") as log:
        subprocess.run(cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=args.duration + 120,
                       check=False)
    wall = time.perf_counter() - wall0
    cpu = {name: cpu_seconds(procs) - before[name] for name, procs in groups.items()}
    cpu.update(locust=children_cpu_s() - client0, machine=machine_busy_s() - machine0, wall=wall)
    if not samples_path.exists():
        raise RuntimeError(f"locust wrote no samples for {tag}; see {log_path}: {log_path.read_text()[-1500:]}")
    return json.loads(samples_path.read_text()), cpu


def run_inprocess(bench: BenchLoop, models: InProcess, scenario: str, users: int, inputs: list,
                  args: argparse.Namespace) -> tuple[list[Sample], dict, list[str]]:
    time.sleep(args.settle)
    procs = models.processes()
    models.batch_sizes.clear()
    cpu0, machine0, wall0 = cpu_seconds(procs), machine_busy_s(), time.perf_counter()
    samples, failures = bench.run(closed_loop(models.call(scenario), inputs, users, args.inprocess_duration,
                                              args.seed + users), timeout_s=args.inprocess_duration + 120)
    cpu = {"driver": cpu_seconds(procs) - cpu0, "machine": machine_busy_s() - machine0,
           "wall": time.perf_counter() - wall0}
    if scenario == "direct_native" and models.batch_sizes:
        cpu["mean_batch"] = round(sum(models.batch_sizes) / len(models.batch_sizes), 2)
    return samples, cpu, failures


# ---- rows -----------------------------------------------------------------------------------------------------------

def base_row(name: str, users: int) -> dict:
    return {"name": name, "dataset": "ml-100k", "protocol": "temporal", "metrics": {"users": users}}


def http_row(scenario: str, users: int, stats: dict, cpu: dict, args: argparse.Namespace,
             idle: float | None = None) -> dict:
    """idle: CPU cores the replica and proxy burn with no traffic (idle_cpu_ms_per_req: that share of
    cpu_ms_per_req)."""
    row = base_row(f"{scenario}_c{users}", users)
    n = max(stats["requests"], 1)
    row["metrics"].update(stats)
    row["metrics"].update(cpu_ms_per_req=round(1000 * (cpu["replica"] + cpu["proxy"]) / n, 2),
                          client_cpu_ms_per_req=round(1000 * cpu["locust"] / n, 2))
    if idle is not None:
        row["metrics"]["idle_cpu_ms_per_req"] = round(1000 * idle * cpu["wall"] / n, 2)
    row["seconds"] = {"run": round(cpu["wall"], 1)}
    row["notes"] = (f"HTTP POST /v1/recommend via Ray Serve proxy -> ingress replica (arm {ARMS[scenario]}), "
                    f"locust FastHttpUser x{users}, no think time, {args.duration:g} s, first {args.warmup:g} s "
                    f"out of latency/rps; server_* = the response's latency_ms (pipeline time); CPU/request: "
                    f"replica {1000 * cpu['replica'] / n:.2f} ms, proxy {1000 * cpu['proxy'] / n:.2f} ms, locust "
                    f"{1000 * cpu['locust'] / n:.2f} ms; machine busy {cpu['machine'] / cpu['wall']:.2f} of "
                    f"{os.cpu_count()} cores; loadavg {os.getloadavg()[0]:.2f}")
    return row


INPROCESS_WHAT = {
    "direct_native": "NativeDirectEngine.recommend_batch behind MicroBatcher (serve settings' batching)",
    "direct_vllm": "VLLMDirectEngine.recommend (AsyncLLM, a second engine in this process)",
    "reasoning_cached": "ReasoningService.recommend (Redis HMGET -> cached vector -> FAISS, in a thread)",
}


def inprocess_row(scenario: str, users: int, stats: dict, cpu: dict, failures: list[str],
                  args: argparse.Namespace) -> dict:
    row = base_row(f"{scenario}_inprocess_c{users}", users)
    n = max(stats["requests"], 1)
    row["metrics"].update(stats)
    row["metrics"]["cpu_ms_per_req"] = round(1000 * cpu["driver"] / n, 2)
    if "mean_batch" in cpu:
        row["metrics"]["mean_batch"] = cpu["mean_batch"]
    row["seconds"] = {"run": round(cpu["wall"], 1)}
    row["notes"] = (f"{INPROCESS_WHAT[scenario]}; {users} asyncio clients, {args.inprocess_duration:g} s, first "
                    f"{args.warmup:g} s out of latency/rps; same users, histories and k as HTTP; machine busy "
                    f"{cpu['machine'] / cpu['wall']:.2f} of {os.cpu_count()} cores; loadavg "
                    f"{os.getloadavg()[0]:.2f}" + (f"; first error: {failures[0]}" if failures else ""))
    return row


def ratio_row(scenario: str, users: int, http: dict, local: dict) -> dict:
    row = base_row(f"{scenario}_ratio_c{users}", users)
    h, i = http["metrics"], local["metrics"]
    m = row["metrics"]
    m.update(ratio=round(h["p50_ms"] / i["p50_ms"], 3), ratio_mean=round(h["mean_ms"] / i["mean_ms"], 3),
             ratio_p99=round(h["p99_ms"] / i["p99_ms"], 3), overhead_p50_ms=round(h["p50_ms"] - i["p50_ms"], 2),
             ratio_rps=round(h["rps"] / i["rps"], 3) if i.get("rps") else None)
    row["notes"] = (f"ratio = HTTP p50 / in-process p50 ({h['p50_ms']} / {i['p50_ms']} ms); ratio_mean = HTTP mean / "
                    f"in-process mean; ratio_p99 likewise; ratio_rps = HTTP rps / in-process rps; "
                    f"overhead_p50_ms = HTTP p50 - in-process p50")
    if scenario.startswith("direct") and users == 8:
        failed = max(h["error_rate"], i["error_rate"])
        row["verdict"] = "pass" if m["ratio"] <= RATIO_TARGET and not failed else "fail"
        row["notes"] += f"; target ratio <= {RATIO_TARGET} at 8 users"
        if failed:
            row["notes"] += (f" with no errors: {100 * h['error_rate']:.0f}% of HTTP and {100 * i['error_rate']:.0f}% "
                             f"of in-process requests failed, so the ratio compares time-outs")
    return row


def plot_latency(rows: list[dict], path: Path) -> Path | None:
    """p50 and p99 per scenario and concurrency, HTTP beside in-process (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    http = [r for r in rows if "_inprocess_" not in r["name"] and "_ratio_" not in r["name"]]
    if not http:
        return None
    by_name = {r["name"]: r for r in rows}
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(http)), 4))
    labels = []
    for x, row in enumerate(http):
        scenario, users = row["name"].rsplit("_c", 1)
        local = by_name.get(f"{scenario}_inprocess_c{users}")
        for offset, r, color, label in ((-0.2, row, "C0", "HTTP"), (0.2, local, "C1", "in-process")):
            if r is None or "p50_ms" not in r["metrics"]:
                continue
            ax.bar(x + offset, r["metrics"]["p50_ms"], 0.38, color=color, label=label if x == 0 else None)
            ax.plot([x + offset] * 2, [r["metrics"]["p50_ms"], r["metrics"]["p99_ms"]], color="k", lw=1)
            ax.plot(x + offset, r["metrics"]["p99_ms"], "k_", ms=10)
        labels.append(f"{scenario}\n{users} users")
    ax.set_xticks(range(len(http)), labels, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("latency ms (bar p50, tick p99)")
    ax.axhline(REASONING_P99_TARGET_MS, color="grey", ls=":", lw=1,
               label=f"reasoning p99 target {REASONING_P99_TARGET_MS:g} ms")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ---- main -----------------------------------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    for name, value in ENV.items():
        os.environ.setdefault(name, value)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # as the replica gets (deployments.build_application)
    scenarios = [s for s in args.scenarios.split(",") if s]
    levels = [int(u) for u in args.users.split(",") if u]
    unknown = sorted(set(scenarios) - set(SCENARIOS))
    if unknown:
        raise SystemExit(f"unknown scenarios {unknown}; choose among {SCENARIOS}")
    for bundle in (args.sft, args.rechead):
        if not (bundle / "manifest.json").is_file():
            raise SystemExit(f"bundle {bundle} not found (no manifest.json)")
    command = "python -m loadtests.run " + " ".join(_without_render(list(sys.argv[1:] if argv is None else argv)))
    if args.render is not None:
        rows = json.loads((args.render / "rows.json").read_text())
        facts = json.loads((args.render / "facts.json").read_text())
        write_serving_report(rows, facts, args, facts.get("command", command.strip()))
        return
    workdir = args.workdir or REPO_ROOT / "runs/loadtests" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir.mkdir(parents=True, exist_ok=True)

    import torch

    torch.set_num_threads(args.threads)
    from serving import deployments
    from serving.engine import DirectQuery
    from serving.engine.native import NativeDirectEngine
    from serving.engine.vllm_engine import VLLMDirectEngine
    from serving.loading import build_store
    from serving.reasoning import ReasoningService
    from tests.redis_server import RedisServer, free_port
    from training.devices import resolve_device

    started = time.perf_counter()
    load_before = os.getloadavg()
    redis = bench = models = None
    served = False
    rows: list[dict] = []
    facts: dict = {}
    try:
        redis = RedisServer()
        settings = serve_settings(args, free_port(), redis.url, workdir)
        histories, users = sample_users(args.split, args.n_users, args.seed)
        data = {"k": args.k, "arms": ARMS, "reasoning": users,
                "direct": [{"user_id": u, "history": histories[u][-args.history_len:]} for u in users]}
        data_path = workdir / "data.json"
        data_path.write_text(json.dumps(data))

        import psutil

        t0 = time.perf_counter()
        reasoning = ReasoningService.from_bundle(args.rechead, build_store(settings), device=resolve_device("cpu"),
                                                 fallback="direct")
        reasoning.warm()
        native = NativeDirectEngine.from_bundle(args.sft, device="cpu", beam_width=settings.engine.beam_width)
        vllm, engine_children = None, []
        if "direct_vllm" in scenarios:
            before_children = {p.pid for p in psutil.Process().children()}
            vllm = VLLMDirectEngine.from_bundle(args.sft, beam_width=settings.engine.beam_width)
            engine_children = [p for p in psutil.Process().children(recursive=True) if p.pid not in before_children]
        models = InProcess(settings, native, vllm, reasoning, engine_children=engine_children, k=args.k)
        bench = BenchLoop()
        bench.run(models.start(), timeout_s=300)
        facts["inprocess_load_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        facts["vectors_written"] = seed_redis(redis.url, histories, users, reasoning)
        facts["seed_s"] = round(time.perf_counter() - t0, 1)

        if scenarios:
            t0 = time.perf_counter()
            served = True
            url = deployments.start(settings, None, 1, float(args.threads))
            wait_ready(url)
            facts["serve_start_s"] = round(time.perf_counter() - t0, 1)
            facts["path_mismatch_at_check"] = check_paths(url, data, scenarios)
            facts["serve_idle_cores"] = round(idle_cores(serve_processes()), 3)
            print(f"service ready at {url} in {facts['serve_start_s']} s; checks {facts['path_mismatch_at_check']}",
                  flush=True)

        queries = [DirectQuery(tuple(d["history"]), args.k, True, d["user_id"]) for d in data["direct"]]
        for scenario in scenarios:
            inputs = users if scenario == "reasoning_cached" else queries
            for n in levels:
                samples, cpu, failures = run_inprocess(bench, models, scenario, n, inputs, args)
                local = inprocess_row(scenario, n, summarize(samples, args.warmup), cpu, failures, args)
                samples, cpu = run_locust(url, scenario, n, args, data_path, workdir)
                http = http_row(scenario, n, summarize(samples, args.warmup), cpu, args, facts["serve_idle_cores"])
                rows += [http, local, ratio_row(scenario, n, http, local)]
                print(json.dumps({r["name"]: r["metrics"] for r in rows[-3:]}), flush=True)
                (workdir / "rows.json").write_text(json.dumps(rows, indent=1))
        if served:
            served = False
            deployments.stop()
        if args.profile:
            from loadtests.profile import run_profile

            if models.vllm is not None:  # its engine core would sit in memory; the profile has no vLLM layer
                models.vllm.shutdown()
                models.vllm, models.engine_children = None, []
            t0 = time.perf_counter()
            profile_rows, spy = run_profile(args, redis.url, data, data_path, workdir, bench, models,
                                            [int(u) for u in args.profile_users.split(",") if u])
            rows += profile_rows
            facts.update(profile_s=round(time.perf_counter() - t0, 1), pyspy=spy)
    finally:
        if models is not None:
            models.close()
        if bench is not None:
            bench.close()
        if served:
            deployments.stop()
        if redis is not None:
            redis.close()

    for row in rows:
        if row["name"].startswith("reasoning_cached_c"):
            row["verdict"] = "pass" if row["metrics"]["p99_ms"] <= REASONING_P99_TARGET_MS else "fail"
            row["notes"] += f"; target p99 <= {REASONING_P99_TARGET_MS:g} ms"
    facts.update(total_s=round(time.perf_counter() - started, 1), loadavg_before=load_before,
                 loadavg_after=os.getloadavg(), workdir=str(workdir), command=command.strip())
    (workdir / "rows.json").write_text(json.dumps(rows, indent=1))
    (workdir / "facts.json").write_text(json.dumps(facts, indent=1))
    write_serving_report(rows, facts, args, command.strip())


def _without_render(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--render":
            skip = True
        elif not arg.startswith("--render="):
            out.append(arg)
    return out


def write_serving_report(rows: list[dict], facts: dict, args: argparse.Namespace, command: str) -> None:
    from training.eval.report import write_report

    png = plot_latency([r for r in rows if not r["name"].startswith("profile_")],
                       args.out_dir / f"{args.report}_latency.png")
    notes = notes_md(rows, facts, args, png)
    md, js = write_report(args.report, rows, command, out_dir=args.out_dir, notes_md=notes, plot_metric=None)
    print(f"wrote {md} and {js}")


def notes_md(rows: list[dict], facts: dict, args: argparse.Namespace, png: Path | None) -> str:
    """Targets and set-up (below the table), then the --notes file when it exists."""
    by_name = {r["name"]: r for r in rows}
    lines = ["## Targets"]
    for scenario in ("direct_native", "direct_vllm"):
        r = by_name.get(f"{scenario}_ratio_c8")
        if r:
            lines.append(f"- {scenario}: HTTP p50 / in-process p50 at 8 users = {r['metrics']['ratio']:.2f} "
                         f"(target ≤ {RATIO_TARGET}) → **{r['verdict']}**; mean ratio {r['metrics']['ratio_mean']:.2f}")
    for users in [int(u) for u in args.users.split(",") if u]:
        r = by_name.get(f"reasoning_cached_c{users}")
        if r:
            lines.append(f"- reasoning_cached at {users} users: p99 {r['metrics']['p99_ms']:.1f} ms (target ≤ "
                         f"{REASONING_P99_TARGET_MS:g} ms) → **{r['verdict']}**")
    errors = sum(r["metrics"].get("errors", 0) for r in rows if "_ratio_" not in r["name"])
    lines.append(f"- errors over every request of every run (benchmark and profile): {errors} "
                 f"(target 0) → **{'pass' if errors == 0 else 'fail'}**")
    if png is not None:
        lines += ["", f"![latency p50 (bar) and p99 (tick), HTTP vs in-process]({png.name})"]
    lines += ["", "## Set-up",
              f"- Everything on 127.0.0.1: throwaway redis-server, Ray Serve app (one ingress replica, "
              f"{args.threads} CPU / torch thread(s); `serving.deployments.start`), locust headless as a subprocess "
              f"(FastHttpUser, no think time), in-process models in the benchmark process with {args.threads} torch "
              f"thread(s). Load generator, server and other jobs share the machine's {os.cpu_count()} cores.",
              f"- Users: {args.n_users} sampled ML-100k users with training histories (temporal split); direct "
              f"requests send each user's last {args.history_len} items, k={args.k}, exclude_seen; reasoning "
              f"requests send the user id only (stored history + programmatic-teacher CoT in Redis, user vector "
              f"cached beforehand: {facts.get('vectors_written')} written; answers by another path at the check: "
              f"{facts.get('path_mismatch_at_check')}).",
              f"- Runs: per scenario and concurrency, the in-process closed loop ({args.inprocess_duration:g} s) then "
              f"locust ({args.duration:g} s), never both at once; the first {args.warmup:g} s of each are left out "
              f"of latency and rps; percentiles are exact (numpy, linear) over per-request samples; errors count "
              f"non-2xx over whole runs.",
              f"- Serve replica + proxy with no traffic: {facts.get('serve_idle_cores')} cores "
              f"(`idle_cpu_ms_per_req`: that background share of `cpu_ms_per_req`).",
              f"- Bundles: policy `{_rel(args.sft)}`, Rechead `{_rel(args.rechead)}`.",
              f"- Load average (1/5/15 min) before {_load(facts['loadavg_before'])}, after "
              f"{_load(facts['loadavg_after'])}; timings: in-process models {facts.get('inprocess_load_s')} s, "
              f"Redis seeding {facts.get('seed_s')} s, service start {facts.get('serve_start_s')} s, profile "
              f"{facts.get('profile_s')} s, whole run {facts['total_s']} s."]
    profile = [r for r in rows if r["name"].startswith("profile_")]
    if profile:
        from loadtests.profile import ladder_md

        lines += ["", ladder_md(profile, facts.get("pyspy") or {}, [int(u) for u in args.profile_users.split(",")])]
    if args.notes and Path(args.notes).is_file():
        lines += ["", Path(args.notes).read_text().strip()]
    return "\n".join(lines)


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _load(values: Sequence[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
