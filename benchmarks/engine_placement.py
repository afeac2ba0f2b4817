"""Engine placement on real Ray Serve: the direct engine inside the ingress replica vs in its own deployment.

    OMP_NUM_THREADS=1 python -m benchmarks.engine_placement --requests 300

`engine.replicas > 0` puts each direct engine in its own deployment behind a handle (serving/engine/remote.py): an
engine replica's death then costs 503s instead of Ray's proxy 500s (reports/reliability.md, engine_replica_kill),
at the price of one actor call per direct request. This measures that price, same run, same stack: local Ray on
loopback, the tiny policy bundle (native engine) and Rechead of the reliability harness, real Redis; per placement,
one client sending direct requests one at a time (latency at the client) and 4 clients with no think time
(throughput). Rows `in_ingress` and `engine_deployment`; ratio = engine_deployment / in_ingress.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path

from loadtests.reliability.harness import Stack, drive, free_port, latency_ms, recommend, set_env, wait_http
from training.eval.report import write_report

PLACEMENTS = {"in_ingress": 0, "engine_deployment": 1}


def measure(stack: Stack, engine_replicas: int, requests: int, seconds: float) -> dict:
    """Start the app with `engine.replicas = engine_replicas`, warm it, then the sequential and concurrent runs."""
    from serving import deployments

    settings = stack.settings("placement", port=free_port(), request_timeout_s=5.0,
                              engine={"replicas": engine_replicas})
    placement = {"num_replicas": 1, "replica_cpus": 1.0, "engine_cpus": 1.0} if engine_replicas else {
        "num_replicas": 1, "replica_cpus": 1.0}
    url = deployments.start(settings, num_cpus=2, **placement)
    try:
        startup_s = wait_http(url, "/readyz", 240)

        def make(worker: int, i: int):
            return recommend(f"placement-{worker}-{i}", [str((worker + i + j) % 12 + 1) for j in range(3)], k=5,
                             arm="direct")

        warm = run(url, make, 1, 600, 20)
        single = run(url, make, 1, 600, requests)
        loaded = run(url, make, 4, seconds, 100_000)
    finally:
        deployments.stop()
    ok = [o for o in loaded if o.status == 200]
    span = max(o.started + o.seconds for o in loaded) - min(o.started for o in loaded)
    return {"startup_s": round(startup_s, 1), "warm_ok": sum(o.status == 200 for o in warm),
            "single": {**latency_ms(single), "ok": sum(o.status == 200 for o in single),
                       "mean_ms": round(1000 * sum(o.seconds for o in single) / len(single), 1)},
            "concurrent": {**latency_ms(loaded), "rps": round(len(ok) / span, 1), "ok": len(ok), "sent": len(loaded)}}


def run(url: str, make, workers: int, seconds: float, max_requests: int) -> list:
    """Outcomes of `workers` clients with no think time until `seconds` pass or `max_requests` were sent."""
    return asyncio.run(drive(url, make, workers, seconds, max_requests, 30.0, 0.0, stop=threading.Event()))


def rows_of(results: dict[str, dict], requests: int, seconds: float) -> list[dict]:
    base = results["in_ingress"]
    rows = []
    for name, r in results.items():
        single, loaded = r["single"], r["concurrent"]
        metrics = {"p50_ms": single["p50_ms"], "p99_ms": single["p99_ms"], "mean_ms": single["mean_ms"],
                   "rps_4_clients": loaded["rps"], "p50_ms_4_clients": loaded["p50_ms"],
                   "ok": single["ok"] + loaded["ok"], "sent": requests + loaded["sent"]}
        if name != "in_ingress":
            metrics["ratio_p50"] = round(single["p50_ms"] / base["single"]["p50_ms"], 3)
            metrics["ratio_rps"] = round(loaded["rps"] / base["concurrent"]["rps"], 3)
        rows.append({"name": name, "metrics": metrics, "seconds": {"startup": r["startup_s"]},
                     "notes": f"engine.replicas={PLACEMENTS[name]}; {requests} direct requests one at a time, then "
                              f"4 clients for {seconds:g} s; tiny policy (native engine), 1 ingress replica"})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the 4-client run")
    parser.add_argument("--out-dir", type=Path, default=Path("reports"))
    args = parser.parse_args()
    set_env()
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack.create(Path(tmp))
        try:
            results = {name: measure(stack, replicas, args.requests, args.seconds)
                       for name, replicas in PLACEMENTS.items()}
        finally:
            stack.close()
    write_report("engine_placement", rows_of(results, args.requests, args.seconds),
                 "python -m " + " ".join(["benchmarks.engine_placement", *sys.argv[1:]]), out_dir=args.out_dir,
                 plot_metric=None)
    print(time.strftime("%H:%M:%S"), results)


if __name__ == "__main__":
    main()
