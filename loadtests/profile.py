"""Where a request's time goes: the same requests measured at each layer of the online stack (loadtests/run.py
runs this after the main benchmark, in the same process, unless --no-profile).

Scenarios `direct_native` and `reasoning_cached` (no vLLM arm, so each stack starts fast), each layer adding one
piece to the one before:

| layer           | what runs                                                                             |
|-----------------|---------------------------------------------------------------------------------------|
| `engine`        | the native engine behind a MicroBatcher / `ReasoningService.recommend`, in-process    |
| `pipeline`      | `RecommendPipeline.recommend(request, arm)`: + arm, time budget, metrics, response    |
| `asgi`          | the FastAPI app called as an ASGI callable, no socket: + routing, body parsing and    |
|                 | validation, middleware, response serialisation                                       |
| `uvicorn`       | the same app under uvicorn on loopback (no Ray), locust as client: + HTTP and socket  |
| `ray`           | `serving.deployments.start`: + Serve proxy -> replica hop (the main benchmark's path) |
| `ray_same_loop` | the same with RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD=0 (user code on the        |
|                 | replica's main loop instead of a loop thread of its own); reasoning_cached only       |
| `ray_access_log` | Ray Serve with its per-request access log on (access_log: true); reasoning_cached only |
| `ray_throughput_optimized` | RAY_SERVE_THROUGHPUT_OPTIMIZED=1 (Serve's bundle: gRPC proxy -> replica, user code |
|                 | and router on the main loop, GC frozen after start-up, no log to stderr), direct     |
|                 | ingress kept off so the proxy still answers on the configured port; reasoning_cached |
| `ray_direct_ingress` | settings.direct_ingress: the replica answers HTTP on a port of its own (Serve's      |
|                 | direct ingress) and locust sends there: no proxy hop                                  |

Rows `profile_<layer>_<scenario>_c<N>`. During the `ray` layer, py-spy samples the replica and the proxy
(reasoning_cached, 8 users, --nonblocking) and their samples are summed by package of the innermost frame.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from loadtests.inprocess import InProcess
from loadtests.measure import BenchLoop, closed_loop, cpu_seconds, idle_cores, serve_processes, summarize
from loadtests.run import check_paths, run_locust, serve_settings, wait_ready
from loadtests.scenarios import ARMS, EXPECTED_PATH, REPO_ROOT

PROFILE_SCENARIOS = ("direct_native", "reasoning_cached")
LAYERS = ("engine", "pipeline", "asgi", "uvicorn", "ray", "ray_same_loop", "ray_access_log",
          "ray_throughput_optimized", "ray_direct_ingress")
SAME_LOOP_ENV = "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD"
THROUGHPUT_ENV = {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_DIRECT_INGRESS": "0"}
# (layer, environment, access log on, scenarios)
RAY_VARIANTS = (("ray", {}, False, PROFILE_SCENARIOS),
                ("ray_same_loop", {SAME_LOOP_ENV: "0"}, False, ("reasoning_cached",)),
                ("ray_access_log", {}, True, ("reasoning_cached",)),
                ("ray_throughput_optimized", THROUGHPUT_ENV, False, ("reasoning_cached",)),
                ("ray_direct_ingress", {}, False, PROFILE_SCENARIOS))
LAYER_WHAT = {
    "engine": "engine / Rechead+FAISS alone, in-process",
    "pipeline": "RecommendPipeline.recommend in-process (prebuilt request objects)",
    "asgi": "FastAPI app as an ASGI callable in-process (JSON bytes in, no socket)",
    "uvicorn": "FastAPI app under uvicorn on loopback, no Ray; locust client",
    "ray": "Ray Serve proxy -> ingress replica (serving.deployments.start); locust client",
    "ray_same_loop": f"Ray Serve with {SAME_LOOP_ENV}=0; locust client",
    "ray_access_log": "Ray Serve with its access log on (settings.access_log: true); locust client",
    "ray_throughput_optimized": "Ray Serve with RAY_SERVE_THROUGHPUT_OPTIMIZED=1, RAY_SERVE_ENABLE_DIRECT_INGRESS=0; "
                                "locust client",
    "ray_direct_ingress": "Ray Serve direct ingress: locust -> the ingress replica's own HTTP port, no proxy",
}


# ---- in-process layers ----------------------------------------------------------------------------------------------

class AsgiCaller:
    """POST /v1/recommend straight into an ASGI app: the request's JSON bytes in, status and JSON out."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, body: bytes, arm: str) -> dict:
        done = asyncio.Event()
        delivered = False
        status, chunks = 0, []
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/v1/recommend", "raw_path": b"/v1/recommend", "query_string": b"",
                 "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
                 "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                             (b"content-length", str(len(body)).encode()), (b"x-reasonrec-arm", arm.encode())]}

        async def receive() -> dict:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()  # a client that stays connected until the response is complete
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    done.set()

        await self.app(scope, receive, send)
        if not 200 <= status < 300:
            raise RuntimeError(f"HTTP {status}: {b''.join(chunks)[:200]!r}")
        return json.loads(b"".join(chunks))


def layer_calls(layer: str, scenario: str, pipeline, app, models: InProcess, k: int):
    """(call, make inputs) for an in-process layer: call(input) -> path ok."""
    from serving.schemas import RecommendRequest

    arm, expected = ARMS[scenario], EXPECTED_PATH[scenario]
    if layer == "engine":
        def engine_inputs(data: dict, queries: list) -> list:
            return data["reasoning"] if scenario == "reasoning_cached" else queries
        return models.call(scenario), engine_inputs

    def body(data: dict) -> list[dict]:
        if scenario == "reasoning_cached":
            return [{"user_id": u, "k": k, "mode": "reasoning"} for u in data["reasoning"]]
        return [{"user_id": d["user_id"], "history": d["history"], "k": k, "mode": "direct"} for d in data["direct"]]

    if layer == "pipeline":
        async def via_pipeline(request):
            return (await pipeline.recommend(request, arm)).path == expected
        return via_pipeline, lambda data, _: [RecommendRequest(**b) for b in body(data)]

    caller = AsgiCaller(app)

    async def via_asgi(payload: bytes):
        return (await caller(payload, arm))["path"] == expected
    return via_asgi, lambda data, _: [json.dumps(b).encode() for b in body(data)]


# ---- servers --------------------------------------------------------------------------------------------------------

def start_uvicorn(settings, port: int, workdir: Path, threads: int) -> subprocess.Popen:
    path = workdir / "uvicorn_settings.json"
    path.write_text(settings.model_dump_json())
    env = {**os.environ, "LOADTEST_SETTINGS": str(path), "OMP_NUM_THREADS": str(threads)}
    log = (workdir / "uvicorn.log").open("w")
    return subprocess.Popen([sys.executable, "-m", "uvicorn", "loadtests.asgi_app:create", "--factory", "--host",
                             "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"],
                            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_process(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---- py-spy ---------------------------------------------------------------------------------------------------------

def start_pyspy(pid: int, seconds: float, out: Path) -> subprocess.Popen | None:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        return None
    return subprocess.Popen([exe, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
                             "--format", "raw", "--output", str(out), "--nonblocking", "--gil"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def package_of(frame: str) -> str:
    """'func (path:line)' -> what the innermost frame belongs to: a package (`ray`, `starlette`, our `serving`, ...)
    or a top-level stdlib module (py-spy writes paths relative to sys.path)."""
    path = frame.rsplit("(", 1)[-1].rstrip(")").rsplit(":", 1)[0]
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    head = path.split("/", 1)[0].removesuffix(".py")
    return f"{head} (ours)" if head in ("serving", "feature_store", "training", "loadtests") else head or "?"


def summarize_pyspy(path: Path, top: int = 8) -> dict:
    """Share of samples by package of the innermost frame, and the busiest innermost functions."""
    if not path.is_file():
        return {}
    by_package, by_function, total, ours = Counter(), Counter(), 0, 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        leaf = stack.split(";")[-1]
        n = int(count)
        total += n
        by_package[package_of(leaf)] += n
        by_function[leaf] += n
        ours += n if any("(ours)" in package_of(f) for f in stack.split(";")) else 0
    return {"samples": total, "ours_inclusive": round(ours / total, 3) if total else None,
            "packages": {k: round(v / total, 3) for k, v in by_package.most_common(top)} if total else {},
            "functions": {k: round(v / total, 3) for k, v in by_function.most_common(top)} if total else {}}


# ---- the ladder -----------------------------------------------------------------------------------------------------

def layer_row(layer: str, scenario: str, users: int, stats: dict, cpu_s: float | None, wall: float,
              note: str) -> dict:
    m = {"users": users, **{k: stats[k] for k in ("requests", "rps", "p50_ms", "p95_ms", "p99_ms", "mean_ms",
                                                      "errors", "error_rate", "path_mismatch") if k in stats}}
    if cpu_s is not None:
        m["cpu_ms_per_req"] = round(1000 * cpu_s / max(stats["requests"], 1), 2)
    for key in ("server_p50_ms",):
        if key in stats:
            m[key] = stats[key]
    return {"name": f"profile_{layer}_{scenario}_c{users}", "dataset": "ml-100k", "protocol": "temporal",
            "metrics": m, "seconds": {"run": round(wall, 1)},
            "notes": f"{LAYER_WHAT[layer]}; {note}; loadavg {os.getloadavg()[0]:.2f}"}


def run_profile(args, redis_url: str, data: dict, data_path: Path, workdir: Path, bench: BenchLoop,
                models: InProcess, levels: Sequence[int]) -> tuple[list[dict], dict]:
    """Every layer for PROFILE_SCENARIOS x levels; returns the rows and the py-spy summaries."""
    from serving import deployments
    from serving.app import build_app
    from serving.engine import DirectQuery
    from serving.loading import build_pipeline_from_settings
    from tests.redis_server import free_port

    arms = ("direct_native", "reasoning")
    queries = [DirectQuery(tuple(d["history"]), args.k, True, d["user_id"]) for d in data["direct"]]
    rows, spy = [], {}
    settings = serve_settings(args, free_port(), redis_url, workdir, arms)

    # in-process layers
    pipeline = build_pipeline_from_settings(settings, warm=True)
    app = build_app(pipeline)
    try:
        for scenario in PROFILE_SCENARIOS:
            for layer in ("engine", "pipeline", "asgi"):
                call, make = layer_calls(layer, scenario, pipeline, app, models, args.k)
                inputs = make(data, queries)
                for users in levels:
                    procs = models.processes()
                    cpu0, wall0 = cpu_seconds(procs), time.perf_counter()
                    seconds = args.profile_inprocess_duration
                    samples, failures = bench.run(closed_loop(call, inputs, users, seconds, args.seed),
                                                  timeout_s=seconds + 120)
                    stats = summarize(samples, args.warmup)
                    rows.append(layer_row(layer, scenario, users, stats, cpu_seconds(procs) - cpu0,
                                          time.perf_counter() - wall0,
                                          f"{users} asyncio clients, {args.profile_inprocess_duration:g} s"
                                          + (f"; first error: {failures[0]}" if failures else "")))
                    print(json.dumps({rows[-1]["name"]: rows[-1]["metrics"]}), flush=True)
    finally:
        bench.run(_close_async(pipeline), timeout_s=30)

    # uvicorn, no Ray
    import psutil

    server = None
    try:
        port = free_port()
        server = start_uvicorn(settings, port, workdir, args.threads)
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, timeout_s=240)
        check_paths(url, data, PROFILE_SCENARIOS)
        rows += _http_layer("uvicorn", url, args, data_path, workdir, levels,
                            lambda: {"server": [psutil.Process(server.pid), *psutil.Process(server.pid).children(
                                recursive=True)]})
    finally:
        stop_process(server)

    # Ray Serve: as deployed, then one change at a time (reasoning_cached only: the purest overhead)
    for layer, env, access_log, scenarios in RAY_VARIANTS:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            settings_ray = serve_settings(args, free_port(), redis_url, workdir, arms).model_copy(
                update={"direct_ingress": layer == "ray_direct_ingress", "access_log": access_log})
            url = deployments.start(settings_ray, None, 1, float(args.threads))
            wait_ready(url)
            if settings_ray.direct_ingress:
                url = deployments.replica_urls(settings_ray)[0]
                wait_ready(url)
            check_paths(url, data, scenarios)
            rows += _http_layer(layer, url, args, data_path, workdir, levels, None, scenarios)
            if layer == "ray" and args.pyspy_seconds > 0:
                spy = _pyspy(url, args, data_path, workdir)
        finally:
            deployments.stop()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return rows, spy


async def _close_async(pipeline) -> None:
    pipeline.close()


def _http_layer(layer: str, url: str, args, data_path: Path, workdir: Path, levels: Sequence[int],
                groups_fn, scenarios: Sequence[str] = PROFILE_SCENARIOS) -> list[dict]:
    rows = []
    idle = idle_cores(groups_fn() if groups_fn else serve_processes())
    for scenario in scenarios:
        for users in levels:
            groups = groups_fn() if groups_fn else serve_processes()
            saved, args.duration = args.duration, args.profile_duration
            try:
                samples, cpu = run_locust(url, scenario, users, args, data_path, workdir,
                                          tag=f"profile_{layer}_{scenario}_c{users}", groups=groups)
            finally:
                args.duration = saved
            stats = summarize(samples, args.warmup)
            server_cpu = sum(v for k, v in cpu.items() if k not in ("locust", "machine", "wall"))
            n = max(stats["requests"], 1)
            split = ", ".join(f"{k} {1000 * v / n:.2f}" for k, v in cpu.items() if k not in ("machine", "wall"))
            rows.append(layer_row(layer, scenario, users, stats, server_cpu, cpu["wall"],
                                  f"locust x{users}, {args.profile_duration:g} s; CPU ms/request: {split}; "
                                  f"server CPU when idle: {idle:.3f} cores"))
            rows[-1]["metrics"]["idle_cpu_ms_per_req"] = round(1000 * idle * cpu["wall"] / n, 2)
            print(json.dumps({rows[-1]["name"]: rows[-1]["metrics"]}), flush=True)
    return rows


def _pyspy(url: str, args, data_path: Path, workdir: Path) -> dict:
    """py-spy on the replica and the proxy while locust sends reasoning_cached requests from 8 users."""
    groups = serve_processes()
    targets = {name: procs[0].pid for name, procs in groups.items() if procs}
    spies = {name: start_pyspy(pid, args.pyspy_seconds, workdir / f"pyspy_{name}.txt")
             for name, pid in targets.items()}
    saved, args.duration = args.duration, args.pyspy_seconds + 4
    try:
        run_locust(url, "reasoning_cached", 8, args, data_path, workdir, tag="pyspy_reasoning_cached_c8")
    finally:
        args.duration = saved
    for proc in spies.values():
        if proc is not None:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                stop_process(proc)
    return {name: summarize_pyspy(workdir / f"pyspy_{name}.txt") for name in targets}


def steps_md(by: dict[str, dict], scenario: str = "reasoning_cached", users: int = 1) -> list[str]:
    """What each layer adds, in CPU ms per request and p50 ms, for one scenario and concurrency."""
    got = [(layer, by.get(f"profile_{layer}_{scenario}_c{users}")) for layer in LAYERS]
    got = [(layer, m) for layer, m in got if m and "p50_ms" in m and "cpu_ms_per_req" in m]
    if len(got) < 2:
        return []
    out = [f"What each layer adds ({scenario} ×{users}; CPU ms per request, p50 ms):"]
    base = dict(got)
    chain = [layer for layer in ("engine", "pipeline", "asgi", "uvicorn", "ray") if layer in base]
    for before, after in zip(chain, chain[1:], strict=False):
        out.append(f"- {before} → {after}: CPU {base[after]['cpu_ms_per_req'] - base[before]['cpu_ms_per_req']:+.1f}, "
                   f"p50 {base[after]['p50_ms'] - base[before]['p50_ms']:+.1f}")
    for variant in ("ray_same_loop", "ray_access_log", "ray_throughput_optimized", "ray_direct_ingress"):
        if variant in base and "ray" in base:
            v, r = base[variant], base["ray"]
            out.append(f"- ray → {variant}: CPU {v['cpu_ms_per_req'] - r['cpu_ms_per_req']:+.1f}, "
                       f"p50 {v['p50_ms'] - r['p50_ms']:+.1f}")
    return out


def ladder_md(rows: list[dict], spy: dict, levels: Sequence[int]) -> str:
    """The profile as one table (p50 ms and CPU ms per request by layer) plus the py-spy shares."""
    by = {r["name"]: r["metrics"] for r in rows}
    cols = [(s, n) for s in PROFILE_SCENARIOS for n in levels]
    head = "| layer | " + " | ".join(f"{s} ×{n}: p50 / p99 ms, CPU ms/req" for s, n in cols) + " |"
    lines = ["## Profile: the same requests, one layer added at a time", "",
             "p50 / p99 latency and server-side CPU per request (in-process layers: this process; HTTP layers: "
             "the server processes, locust's CPU excluded). Rows `profile_*` in the table above.", "",
             head, "|" + "---|" * (len(cols) + 1)]
    for layer in LAYERS:
        cells = []
        for s, n in cols:
            m = by.get(f"profile_{layer}_{s}_c{n}")
            cells.append("–" if m is None or "p50_ms" not in m else
                         f"{m['p50_ms']:.1f} / {m['p99_ms']:.1f}, {m.get('cpu_ms_per_req', float('nan')):.1f}")
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    lines += ["", *steps_md(by)]
    for name, summary in spy.items():
        if summary.get("samples"):
            pk = ", ".join(f"{k} {100 * v:.0f}%" for k, v in summary["packages"].items())
            fn = "; ".join(f"`{k}` {100 * v:.0f}%" for k, v in list(summary["functions"].items())[:5])
            lines += ["", f"py-spy (`--gil`: the thread holding the GIL), Serve {name}, reasoning_cached ×8, "
                          f"{summary['samples']} samples; our code (serving, feature_store, training) on the stack in "
                          f"{100 * summary['ours_inclusive']:.0f}% of them; innermost frame by package: {pk}. "
                          f"Busiest: {fn}."]
    return "\n".join(lines)

