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
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from loadtests.inprocess import InProcess, run_inprocess
from loadtests.measure import (
    BenchLoop,
    Sample,
    add_cpu,
    children_cpu_s,
    cpu_seconds,
    engine_batch_totals,
    idle_cores,
    machine_busy_s,
    mean_batch,
    serve_processes,
    summarize_rounds,
)
from loadtests.scenarios import ARMS, EXPECTED_PATH, REPO_ROOT, SCENARIOS, USER_CLASS
from loadtests.serving_report import add_p99_verdicts, http_row, inprocess_row, ratio_row, write_serving_report

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
NAMESPACE = "loadtest"
ENV = {"RAY_USAGE_STATS_ENABLED": "0", "VLLM_NO_USAGE_STATS": "1", "HF_HUB_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false", "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1",
       "VLLM_HOST_IP": "127.0.0.1"}


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
    p.add_argument("--rounds", type=int, default=1, help="pairs of (in-process run, locust run) per scenario and "
                   "concurrency, pooled: the machine's speed drifts between runs")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds at the start of a run left out of latency")
    p.add_argument("--settle", type=float, default=2.0, help="pause before each run (the last one's leftovers)")
    p.add_argument("--n-users", type=int, default=200, help="sampled ML-100k users (histories, reasoning rows)")
    p.add_argument("--history-len", type=int, default=50, help="direct requests send the last N items")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--ingress", choices=("proxy", "direct"), default="proxy",
                   help="HTTP path of the main runs: Serve's proxy on the configured port, or the replica's own port "
                        "(Serve direct ingress, settings.direct_ingress)")
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
               direct_ingress=args.ingress == "direct",
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


def measure_scenarios(url: str, bench: BenchLoop, models: InProcess, scenarios: Sequence[str],
                      levels: Sequence[int], data: dict, data_path: Path, workdir: Path, args: argparse.Namespace,
                      idle: float) -> list[dict]:
    """Per scenario and concurrency: the in-process closed loop, then locust; rows HTTP, in-process and ratio
    (workdir/rows.json rewritten after each). idle: the Serve replica and proxy's cores with no traffic."""
    from serving.engine import DirectQuery

    rows: list[dict] = []
    queries = [DirectQuery(tuple(d["history"]), args.k, True, d["user_id"]) for d in data["direct"]]
    for scenario in scenarios:
        inputs = data["reasoning"] if scenario == "reasoning_cached" else queries
        for n in levels:
            rows += measure_level(url, bench, models, scenario, n, inputs, data_path, workdir, args, idle)
            print(json.dumps({r["name"]: r["metrics"] for r in rows[-3:]}), flush=True)
            (workdir / "rows.json").write_text(json.dumps(rows, indent=1))
    return rows


def measure_level(url: str, bench: BenchLoop, models: InProcess, scenario: str, n: int, inputs: list,
                  data_path: Path, workdir: Path, args: argparse.Namespace, idle: float) -> list[dict]:
    """HTTP, in-process and ratio rows of one scenario at n users: --rounds pairs of (in-process run, locust run),
    pooled, so that a slow or fast stretch of the machine lands on both sides."""
    local_runs, http_runs = [], []
    batched = scenario == "direct_native"  # the only arm behind the micro-batcher
    batches_before = engine_batch_totals(url) if batched else None
    for round_index in range(args.rounds):
        local_runs.append(run_inprocess(bench, models, scenario, n, inputs, args))
        tag = f"{scenario}_c{n}" + (f"_r{round_index}" if args.rounds > 1 else "")
        http_runs.append(run_locust(url, scenario, n, args, data_path, workdir, tag=tag))
    failures = [f for _, _, fs in local_runs for f in fs]
    local = inprocess_row(scenario, n, summarize_rounds([s for s, _, _ in local_runs], args.warmup),
                          add_cpu([c for _, c, _ in local_runs]), failures, args)
    http = http_row(scenario, n, summarize_rounds([s for s, _ in http_runs], args.warmup),
                    add_cpu([c for _, c in http_runs]), args, idle)
    if batched:
        http["metrics"]["mean_batch"] = mean_batch(batches_before, engine_batch_totals(url))
    return [http, local, ratio_row(scenario, n, http, local)]


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
        facts["native_engine"] = ("a child process of the replica (`engine.process: true`; a batch starts as soon as "
                                  "it is free)" if settings.engine.process else "in the replica, a worker thread "
                                  f"(batches wait for the company they expect, ≤ {settings.engine.batch_wait_ms:g} ms)")
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
            if args.ingress == "direct":
                url = deployments.replica_urls(settings)[0]
                wait_ready(url)
            facts["serve_start_s"] = round(time.perf_counter() - t0, 1)
            facts["path_mismatch_at_check"] = check_paths(url, data, scenarios)
            facts["serve_idle_cores"] = round(idle_cores(serve_processes()), 3)
            print(f"service ready at {url} in {facts['serve_start_s']} s; checks {facts['path_mismatch_at_check']}",
                  flush=True)
            rows += measure_scenarios(url, bench, models, scenarios, levels, data, data_path, workdir, args,
                                      facts["serve_idle_cores"])
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

    add_p99_verdicts(rows)
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


if __name__ == "__main__":
    main()
