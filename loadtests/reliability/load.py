"""Load scenarios on the app in its own process (uvicorn, `loadtests/asgi_app.py`): overload and soak.

- `overload`: one client measures capacity (requests/s, latency) of direct and reasoning requests; then
  `workers` clients with no think time (far above capacity) for `seconds`, per mode. The service must shed the
  excess with 503 + Retry-After at once, keep the latency of the requests it accepts bounded by the request
  timeout, keep serving (goodput not collapsed), and answer normally once the load stops.
- `soak`: a steady mix (direct, reasoning from cached CoTs and from history, cold users, feedback, invalid
  requests) for `seconds` while the server's RSS is sampled every second. After the warm-up, RSS must not grow:
  the least-squares slope and the rise from the first to the last third stay under the thresholds.
"""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import numpy as np

from loadtests.reliability.harness import (
    Outcome,
    ProcessServer,
    Scenario,
    Stack,
    drive,
    has_reason,
    latency_ms,
    recommend,
    seed_users,
    server_latency_ms,
    statuses,
    timed,
    user_histories,
)

ENGINE = {"max_batch_size": 4, "batch_wait_ms": 2.0, "max_queue": 8, "retry_after_s": 1.0}
MAX_GROWTH_MB = 16.0  # RSS rise, first third -> last third of the samples after warm-up
MAX_SLOPE_MB_PER_MIN = 4.0


def overload_settings(stack: Stack):
    return stack.settings("rel_load", engine=ENGINE, reasoning_max_in_flight=ENGINE["max_queue"], request_timeout_s=2.0)


def _mode_request(mode: str, users: list[str]):
    if mode == "direct":
        return lambda w, i: recommend(f"load-{w}-{i}", ["1", "2", "3"], k=5, arm="direct")
    return lambda w, i: recommend(users[(w + i) % len(users)], None, k=5, arm="reasoning")


def run_overload(stack: Stack, seconds: float = 8.0, workers: int = 16, server: ProcessServer | None = None
                 ) -> Scenario:
    """Capacity with one client, then `workers` clients without think time, for direct and reasoning requests."""
    scenario = Scenario("overload", injected=f"{workers} concurrent clients with no think time for {seconds:g} s per "
                                             "mode (direct, reasoning), after a 1-client capacity run")
    settings = overload_settings(stack)
    users = sorted(user_histories(24, "load"))
    seed_users(settings, user_histories(24, "load"))
    own = server is None
    server = server or ProcessServer(settings, stack.workdir / "load")
    with timed(scenario):
        if own:
            server.start()
        try:
            per_mode = {}
            asyncio.run(drive(server.url, _mode_request("reasoning", users), workers=1, seconds=60,
                              max_requests=len(users)))  # cache every user's vector: the hot path is measured
            for mode in ("direct", "reasoning"):
                make = _mode_request(mode, users)
                single = asyncio.run(drive(server.url, make, workers=1, seconds=min(3.0, seconds)))
                crowd = asyncio.run(drive(server.url, make, workers=workers, seconds=seconds, max_requests=50_000,
                                          timeout_s=settings.request_timeout_s + 8))
                after = asyncio.run(drive(server.url, make, workers=1, seconds=1.0, max_requests=20))
                per_mode[mode] = (single, crowd, after)
        finally:
            if own:
                server.stop()
        _judge_overload(scenario, per_mode, seconds, settings.request_timeout_s)
    return scenario


def _rps(outcomes: list[Outcome], seconds: float) -> float:
    return round(sum(1 for o in outcomes if o.status == 200) / seconds, 1)


def _judge_overload(scenario: Scenario, per_mode: dict, seconds: float, timeout_s: float) -> None:
    compared = []
    for mode, (single, crowd, after) in per_mode.items():
        scenario.count(single + crowd + after)
        shed = [o for o in crowd if o.status == 503]
        capacity, goodput = _rps(single, min(3.0, seconds)), _rps(crowd, seconds)
        accepted, inside = latency_ms(crowd), server_latency_ms(crowd)
        scenario.metrics[mode] = {"capacity_rps": capacity, "goodput_rps": goodput,
                                  "single_client": latency_ms(single), "accepted": accepted,
                                  "accepted_server_side": inside, "shed": latency_ms(crowd, 503),
                                  "responses": statuses(crowd)}
        compared.append(f"{mode}: 1 client {capacity} req/s, p50 {latency_ms(single).get('p50_ms')} ms; "
                        f"overloaded goodput {goodput} req/s, accepted p99 {accepted.get('p99_ms')} ms "
                        f"({inside.get('p99_ms')} ms in the pipeline), shed p50 "
                        f"{latency_ms(crowd, 503).get('p50_ms')} ms")
        scenario.check(f"{mode}: only 200 or 503", set(statuses(crowd)) <= {"200", "503"})
        scenario.check(f"{mode}: the excess is shed with 503", len(shed) > 0)
        scenario.check(f"{mode}: shed at once, not by the timeout (503 p50 < request timeout)",
                       shed and latency_ms(crowd, 503)["p50_ms"] < timeout_s * 1000)
        scenario.check(f"{mode}: every 503 has Retry-After >= 1 and a reason",
                       all(o.retry_after and int(o.retry_after) >= 1 and has_reason(o) for o in shed))
        scenario.check(f"{mode}: accepted, in the pipeline: p99 within the request timeout",
                       inside and inside["p99_ms"] <= timeout_s * 1000)
        scenario.check(f"{mode}: accepted, at the client: p99 within 2x the request timeout",
                       accepted and accepted["p99_ms"] <= 2 * timeout_s * 1000)
        scenario.check(f"{mode}: no request hangs (slowest <= 3x the request timeout)",
                       max(o.seconds for o in crowd) <= 3 * timeout_s)
        scenario.check(f"{mode}: goodput under overload >= 50% of capacity", goodput >= 0.5 * capacity)
        scenario.check(f"{mode}: normal answers once the load stops", after and all(o.status == 200 for o in after))
    scenario.compared = "; ".join(compared)


# ---- soak ---------------------------------------------------------------------------------------------------------

def soak_request(users: list[str]):
    """The soak's mix: direct, reasoning (stored CoT / given history), a cold user, feedback, an invalid request."""
    def make(w: int, i: int):
        kind, n = i % 6, w * 100_000 + i
        if kind == 0:
            return recommend(f"soak-{n % 500}", [str(n % 12 + 1), str((n + 5) % 12 + 1)], k=5, arm="direct")
        if kind == 1:
            return recommend(users[n % len(users)], None, k=5, arm="reasoning")
        if kind == 2:
            return recommend(f"soak-{n % 500}", [str(n % 12 + 1)], k=3, arm="reasoning")
        if kind == 3:
            return recommend(f"soak-cold-{n}", None, k=3)
        if kind == 4:
            return "POST", "/v1/feedback", {"user_id": f"soak-{n % 500}", "item_id": str(n % 12 + 1),
                                            "event": "exposure", "request_id": f"soak-{n}"}, {}
        return "POST", "/v1/recommend", {"user_id": "soak-bad", "k": 0}, {}
    return make


def rss_trend(samples: list[tuple[float, int]], warmup_s: float) -> dict[str, float]:
    """RSS after the warm-up: first/last-third medians (MB), their difference, least-squares slope (MB/min)."""
    kept = [(t, rss) for t, rss in samples if t >= warmup_s]
    if len(kept) < 6:
        return {}
    t = np.array([s[0] for s in kept])
    mb = np.array([s[1] for s in kept]) / 2**20
    third = len(kept) // 3
    slope = float(np.polyfit(t, mb, 1)[0]) * 60
    start, end = float(np.median(mb[:third])), float(np.median(mb[-third:]))
    return {"rss_start_mb": round(start, 1), "rss_end_mb": round(end, 1), "rss_growth_mb": round(end - start, 2),
            "rss_slope_mb_per_min": round(slope, 2), "rss_max_mb": round(float(mb.max()), 1), "samples": len(kept)}


def run_soak(stack: Stack, seconds: float = 300.0, warmup_s: float | None = None, workers: int = 4,
             pace_s: float = 0.01, server: ProcessServer | None = None) -> Scenario:
    """`seconds` of the mixed load with RSS sampled every second; warm-up default: a fifth of the run, >= 10 s."""
    warmup_s = max(10.0, seconds / 5) if warmup_s is None else warmup_s
    scenario = Scenario("soak", injected=f"{seconds:g} s of mixed traffic ({workers} clients, {pace_s * 1000:g} ms "
                                         f"think time), RSS sampled every 1 s, first {warmup_s:g} s = warm-up")
    settings = overload_settings(stack)
    users = user_histories(24, "load")
    seed_users(settings, users)
    own = server is None
    server = server or ProcessServer(settings, stack.workdir / "soak")
    with timed(scenario):
        if own:
            server.start()
        samples: list[tuple[float, int]] = []
        done = threading.Event()

        def sample() -> None:
            start = time.monotonic()
            while not done.wait(1.0):
                samples.append((time.monotonic() - start, server.rss_bytes()))

        sampler = threading.Thread(target=sample, daemon=True)
        try:
            sampler.start()
            outcomes = asyncio.run(drive(server.url, soak_request(sorted(users)), workers=workers, seconds=seconds,
                                         max_requests=2_000_000, pace_s=pace_s))
            with httpx.Client(base_url=server.url, timeout=10) as http:
                metrics_text = http.get("/metrics").text
        finally:
            done.set()
            sampler.join(5)
            if own:
                server.stop()
        _judge_soak(scenario, outcomes, rss_trend(samples, warmup_s), seconds, metrics_text)
    return scenario


def _judge_soak(scenario: Scenario, outcomes: list[Outcome], trend: dict, seconds: float, metrics_text: str) -> None:
    scenario.count(outcomes)
    errors = [o for o in outcomes if not isinstance(o.status, int) or o.status >= 500]
    expected_422 = [o for o in outcomes if o.request[2].get("k") == 0]
    scenario.metrics = {**trend, "rps": round(len(outcomes) / seconds, 1), **latency_ms(outcomes),
                        "metrics_bytes": len(metrics_text)}
    scenario.compared = (f"server RSS after the warm-up: {trend.get('rss_start_mb')} MB (first third) -> "
                         f"{trend.get('rss_end_mb')} MB (last third), slope {trend.get('rss_slope_mb_per_min')} MB/min")
    scenario.check("no 5xx, no hang", not errors)
    scenario.check("invalid requests answered 422 with a reason",
                   expected_422 and all(o.status == 422 and has_reason(o) for o in expected_422))
    scenario.check("enough RSS samples", trend.get("samples", 0) >= 6)
    scenario.check(f"RSS growth <= {MAX_GROWTH_MB:g} MB", trend and trend["rss_growth_mb"] <= MAX_GROWTH_MB)
    scenario.check(f"RSS slope <= {MAX_SLOPE_MB_PER_MIN:g} MB/min",
                   trend and trend["rss_slope_mb_per_min"] <= MAX_SLOPE_MB_PER_MIN)
