"""Measuring a run of the serving benchmark: per-request samples and their summary (latency percentiles over the
samples after the warm-up, rps, errors over all of them), CPU seconds of process groups (the Serve replica with its
children, the Serve proxy, this process, locust as a child, the whole machine), and the closed loop of asyncio
clients that drives the in-process models on one event loop of their own (`BenchLoop`). No model, server or
report code: loadtests/run.py, loadtests/inprocess.py and loadtests/profile.py call these.
"""

from __future__ import annotations

import asyncio
import random
import resource
import threading
import time
from collections.abc import Awaitable, Callable, Sequence

import numpy as np

Sample = list  # [start unix s, latency ms, ok, server ms | None, path ok | None]


# ---- the server's own counters ------------------------------------------------------------------------------------

def engine_batch_totals(url: str) -> tuple[float, float]:
    """(sum, count) of the service's `<namespace>_engine_batch_size` histogram over its engines, from /metrics: the
    difference of two reads / the difference of their counts is the mean micro-batch between them."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=10).text
    totals = {"sum": 0.0, "count": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            head, _, kind = sample.name.rpartition("_")
            if head.endswith("_engine_batch_size") and kind in totals:
                totals[kind] += sample.value
    return totals["sum"], totals["count"]


def mean_batch(before: tuple[float, float], after: tuple[float, float]) -> float | None:
    count = after[1] - before[1]
    return round((after[0] - before[0]) / count, 2) if count > 0 else None


# ---- statistics ---------------------------------------------------------------------------------------------------

def summarize(samples: list[Sample], warmup_s: float) -> dict:
    """Latency (ms, linear-interpolated percentiles) and rps over the samples that started after the warm-up;
    requests, errors and error rate over all of them."""
    return summarize_rounds([samples], warmup_s)


def summarize_rounds(rounds: Sequence[list[Sample]], warmup_s: float) -> dict:
    """`summarize` over several runs of one set-up: each run's warm-up left out, percentiles over the pooled
    samples, rps = answered requests over the sum of the runs' measured windows (not the gaps between runs)."""
    rounds = [samples for samples in rounds if samples]
    if not rounds:
        return {"requests": 0, "errors": 0, "error_rate": None}
    window, span = [], 0.0
    for samples in rounds:
        first = min(s[0] for s in samples)
        kept = [s for s in samples if s[0] >= first + warmup_s] or samples
        begin = first + warmup_s if len(kept) < len(samples) else first
        span += max(s[0] + s[1] / 1000 for s in kept) - begin
        window += kept
    every = [s for samples in rounds for s in samples]
    lat = np.array([s[1] for s in window])
    ok = sum(1 for s in window if s[2])
    errors = sum(1 for s in every if not s[2])
    out = {"requests": len(every), "rps": round(ok / max(span, 1e-9), 1),
           "p50_ms": _r(np.percentile(lat, 50)), "p95_ms": _r(np.percentile(lat, 95)),
           "p99_ms": _r(np.percentile(lat, 99)), "mean_ms": _r(lat.mean()),
           "errors": errors, "error_rate": round(errors / len(every), 5),
           "path_mismatch": sum(1 for s in every if s[4] is False)}
    server = np.array([s[3] for s in window if s[3] is not None])
    if server.size:
        out["server_p50_ms"], out["server_p99_ms"] = _r(np.percentile(server, 50)), _r(np.percentile(server, 99))
    return out


def add_cpu(rounds: Sequence[dict]) -> dict:
    """CPU-second dicts of several runs summed key by key (`mean_batch`, a mean, is averaged)."""
    total: dict = {}
    for cpu in rounds:
        for key, value in cpu.items():
            total[key] = total.get(key, 0.0) + value
    if "mean_batch" in total:
        total["mean_batch"] = round(total["mean_batch"] / sum("mean_batch" in cpu for cpu in rounds), 2)
    return total


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


# ---- the in-process loop ------------------------------------------------------------------------------------------

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
