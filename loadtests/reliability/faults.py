"""Fault scenarios on the app without Ray: Redis killed, a bad bundle at hot reload, feedback across a restart.

- `redis_kill`: reasoning traffic on users with cached CoTs; Redis is SIGKILLed mid-traffic, then restarted on
  the same port and its rows restored (as its persistence would). Answers must stay 200 with fallback
  `redis_unavailable` while it is down, /readyz must say 503, and the same app must return to the CoT path with
  the same items per user as before the kill.
- `bad_bundle`: the replica's own code (`serving.deployments.RecommendIngress`: `POST /admin/reload`) under
  uvicorn without Ray; the policy bundle is removed, then a weight file is corrupted, then the manifest is
  garbled, and a reload is asked each time while clients keep sending requests and feedback. Each reload must be
  refused (409, naming the arm and the cause), every request must stay 200 on the old bundle version, and a
  reload after the bundle is restored must succeed.
- `feedback_restart`: clients send feedback events (each retried with its request_id until acknowledged) while
  the server process is SIGKILLed (and, in the report, also SIGTERMed) and started again on the same log.
  Every event must be in the log exactly once.

The nearline job's kill/resume scenario is in `nearline.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import shutil
import signal
import threading
import time
import warnings
from pathlib import Path

import httpx

from loadtests.reliability.harness import (
    ProcessServer,
    Scenario,
    Stack,
    ThreadServer,
    Traffic,
    has_reason,
    item_ids,
    latency_ms,
    recommend,
    seed_users,
    timed,
    user_histories,
)

REASONING_OK_PATHS = ("cot", "cached_vector")


# ---- Redis killed mid-traffic -------------------------------------------------------------------------------------

def run_redis_kill(stack: Stack, phase_s: float = 3.0, recover_within_s: float = 10.0) -> Scenario:
    """Redis SIGKILLed under reasoning traffic, down for `phase_s`, restarted and restored; the app is not touched."""
    from serving.app import build_app
    from serving.loading import build_pipeline_from_settings

    scenario = Scenario("redis_kill", injected=f"SIGKILL of redis-server mid-traffic, down {phase_s:g} s, restarted "
                                               "on the same port and its rows restored; the app kept running")
    users = user_histories(12, "redis-kill")
    names = sorted(users)

    def make(w: int, i: int):
        user = names[(w * 7 + i) % len(names)]
        return recommend(user, None, k=5, arm="reasoning")  # the stored history and CoT: Redis is needed

    with timed(scenario):
        settings = stack.settings("rel_redis")
        seed_users(settings, users)
        pipeline = build_pipeline_from_settings(settings)
        try:
            with ThreadServer(build_app(pipeline)) as server, httpx.Client(base_url=server.url, timeout=10) as http:
                baseline = _answers_from_cot(http, names) or {}
                with Traffic(server.url, make, workers=4, seconds=phase_s * 3 + recover_within_s + 10,
                             max_requests=20_000, pace_s=0.01) as traffic:
                    time.sleep(phase_s)
                    traffic.mark("kill")
                    stack.redis.kill()
                    time.sleep(phase_s / 2)
                    traffic.mark("down_settled")
                    ready_down = http.get("/readyz")
                    time.sleep(phase_s / 2)
                    traffic.mark("restart")
                    stack.redis.start()
                    seed_users(settings, users)
                    recovered_after = _wait_for(lambda: _answers_from_cot(http, names), recover_within_s)
                    traffic.mark("recovered")
                    ready_up = http.get("/readyz")
                    time.sleep(phase_s)
                final = _answers_from_cot(http, names) or {}
        finally:
            if not stack.redis.running():
                stack.redis.start()
            pipeline.close()
        _judge_redis_kill(scenario, traffic, (baseline, final), (ready_down, ready_up), recovered_after,
                          settings.request_timeout_s)
    return scenario


def _answers_from_cot(http: httpx.Client, users: list[str]) -> dict[str, tuple[str, ...]] | None:
    """Each user's top-5 items when one request per user is answered from the cached CoT or vector, else None."""
    answers = {}
    for user in users:
        _, path, body, headers = recommend(user, None, 5, "reasoning")
        response = http.post(path, json=body, headers=headers)
        if response.status_code != 200 or response.json().get("path") not in REASONING_OK_PATHS:
            return None
        answers[user] = tuple(i["item_id"] for i in response.json()["items"])
    return answers


def _wait_for(condition, timeout_s: float) -> float | None:
    """Seconds until condition() held (polled every 0.2 s), None when it never did."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if condition():
            return time.monotonic() - start
        time.sleep(0.2)
    return None


def _judge_redis_kill(scenario: Scenario, traffic: Traffic, answers: tuple[dict, dict], readiness: tuple,
                      recovered_after: float | None, timeout_s: float) -> None:
    before, down = traffic.within("start", "kill"), traffic.within("down_settled", "restart")
    after = traffic.within("recovered", "end")
    (baseline, final), (ready_down, ready_up) = answers, readiness
    everything = traffic.outcomes
    scenario.count(everything)
    scenario.requests += len(baseline) + len(final)
    scenario.responses["200"] = scenario.responses.get("200", 0) + len(baseline) + len(final)
    drifted = [o for o in after if o.status == 200 and item_ids(o) != baseline.get(o.request[2]["user_id"])]
    same = sum(1 for user, items in final.items() if baseline.get(user) == items)
    scenario.compared = (f"top-5 items per user, before the kill vs after the recovery: {same}/{len(baseline)} users "
                         f"identical; {len(after) - len(drifted)}/{len(after)} answers after the recovery match")
    scenario.metrics = {"requests_before": len(before), "requests_down": len(down), "requests_after": len(after),
                        "fallback_while_down": sum(1 for o in down if (o.body or {}).get("fallback")
                                                   == "redis_unavailable"),
                        "recovery_s": None if recovered_after is None else round(recovered_after, 2),
                        "readyz_down": ready_down.status_code, "readyz_after": ready_up.status_code,
                        **latency_ms(everything)}
    judged = {id(o) for o in before + down + after}
    transition = [o for o in everything if id(o) not in judged]  # around the kill, and restart -> recovery
    retry_later = [o for o in transition if o.status == 503 and o.retry_after and has_reason(o)]
    scenario.metrics["retry_later_in_transitions"] = len(retry_later)
    scenario.check("every answer 200, or 503 + Retry-After + reason while Redis comes and goes (no other 5xx, no "
                   "hang)", all(o.status == 200 for o in before + down + after)
                   and all(o.status == 200 or o in retry_later for o in transition))
    scenario.check("503s (request budget while vectors are recomputed) <= 2% of requests",
                   len(retry_later) <= 0.02 * len(everything))
    scenario.check("before: the CoT path", before and all((o.body or {}).get("path") in REASONING_OK_PATHS
                                                          for o in before))
    scenario.check("down: fallback redis_unavailable", down and all((o.body or {}).get("fallback")
                                                                    == "redis_unavailable" for o in down))
    scenario.check("down: /readyz 503 naming redis", ready_down.status_code == 503
                   and "redis" in ready_down.json().get("detail", ""))
    scenario.check("recovered without restarting the app", recovered_after is not None)
    scenario.check("after: the CoT path, no fallback", after and all(
        (o.body or {}).get("path") in REASONING_OK_PATHS and not (o.body or {}).get("fallback") for o in after))
    scenario.check("after: /readyz 200", ready_up.status_code == 200)
    scenario.check("after: same items as before the kill", baseline and same == len(baseline) == len(final)
                   and not drifted)
    scenario.check("no request slower than the request timeout", max(o.seconds for o in everything) <= timeout_s + 1)


# ---- a corrupt or missing bundle at hot reload -------------------------------------------------------------------

def break_missing(bundle: Path) -> None:
    bundle.rename(bundle.with_name(bundle.name + ".moved"))


def break_weights(bundle: Path) -> None:
    weights = next((bundle / "policy").glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\xff" * 64
    weights.write_bytes(bytes(data))


def break_manifest(bundle: Path) -> None:
    manifest = bundle / "manifest.json"
    manifest.write_text(manifest.read_text()[: len(manifest.read_text()) // 2])


BREAKAGES = {"missing": (break_missing, "does not exist"), "corrupt_weights": (break_weights, "files changed"),
             "corrupt_manifest": (break_manifest, "manifest")}


def run_bad_bundle(stack: Stack, breakages: tuple[str, ...] = tuple(BREAKAGES)) -> Scenario:
    """Hot reload with a broken policy bundle (each of `breakages`), under traffic; then a good reload."""
    scenario = Scenario("bad_bundle", injected="policy bundle at reload: " + ", ".join(breakages)
                                               + " (each followed by POST /admin/reload); then restored and reloaded")
    with timed(scenario):
        work = stack.workdir / "bad_bundle"
        shutil.rmtree(work, ignore_errors=True)
        bundle = Path(shutil.copytree(stack.sft, work / "sft"))
        settings = stack.settings("rel_reload", bundles={"sft": str(bundle), "rechead": str(stack.rechead)},
                                  feedback_log=str(work / "feedback.jsonl"))
        seed_users(settings, user_histories(4, "reload"))
        pristine = Path(shutil.copytree(bundle, work / "sft.pristine"))
        replies = {}
        with _ingress(settings) as (url, version):
            def make(w: int, i: int):
                if w == 2:  # one client logs feedback: none may be lost while pipelines are swapped
                    return "POST", "/v1/feedback", {"user_id": "reload-0", "item_id": "3", "event": "click",
                                                    "request_id": f"reload-fb-{i}"}, {}
                return recommend(f"reload-{i % 4}", ["1", "2"], k=3, arm=("direct", "reasoning")[w % 2])

            with Traffic(url, make, workers=3, seconds=120, max_requests=20_000, pace_s=0.02) as traffic, \
                    httpx.Client(base_url=url, timeout=120) as http:
                for name in breakages:
                    BREAKAGES[name][0](bundle)
                    replies[name] = http.post("/admin/reload")
                    time.sleep(0.5)  # the broken bundle stays on disk while the old pipeline serves
                    shutil.rmtree(bundle, ignore_errors=True)
                    shutil.rmtree(bundle.with_name(bundle.name + ".moved"), ignore_errors=True)
                    shutil.copytree(pristine, bundle)
                replies["restored"] = http.post("/admin/reload")
                time.sleep(0.5)
        _judge_bad_bundle(scenario, traffic, replies, version, breakages, work / "feedback.jsonl")
    return scenario


@contextlib.contextmanager
def _ingress(settings):
    """The Serve replica's class, constructed and served without Ray: (base URL, the policy's bundle version)."""
    from serving.deployments import RecommendIngress

    async def construct():
        ingress = RecommendIngress.__new__(RecommendIngress)
        await ingress.__init__(settings.model_dump(mode="json"))  # the async constructor Serve awaits
        return ingress

    ingress = asyncio.run(construct())  # warmed on a throwaway loop; uvicorn's loop re-makes the batcher
    version = ingress.pipeline.engines["direct"].bundle_version
    server = None
    try:
        with ThreadServer(ingress.__serve_build_asgi_app__()) as server:
            yield server.url, version
    finally:
        ingress.pipeline.close()
        with warnings.catch_warnings():  # Serve awaits the wrapper's async __del__; here its coroutine is dropped
            warnings.simplefilter("ignore", RuntimeWarning)
            server = ingress = None
            gc.collect()


def _judge_bad_bundle(scenario: Scenario, traffic: Traffic, replies: dict, version: str, breakages, log: Path) -> None:
    from serving.feedback import read_jsonl

    scenario.count(traffic.outcomes)
    recs = [o for o in traffic.outcomes if o.request[1] == "/v1/recommend"]
    acked = {o.request[2]["request_id"] for o in traffic.outcomes if o.request[1] == "/v1/feedback" and o.status == 200}
    logged = [row["request_id"] for row in read_jsonl(log)]
    direct = [o for o in recs if o.status == 200 and (o.body or {}).get("arm") == "direct"]
    scenario.compared = (f"bundle_version of {len(direct)} direct answers ({version[:12]}…) across the refused "
                         f"reloads; feedback acknowledged {len(acked)}, logged {len(logged)} "
                         f"({len(set(logged))} distinct)")
    scenario.metrics = {"reloads": {name: reply.status_code for name, reply in replies.items()},
                        "feedback_acked": len(acked), "feedback_logged": len(logged), **latency_ms(recs)}
    for name in breakages:
        reply, cause = replies[name], BREAKAGES[name][1]
        body = reply.json() if reply.headers.get("content-type", "").startswith("application/json") else {}
        error = json.dumps(body.get("errors", {}))
        scenario.check(f"{name}: reload refused (409) naming the arm and the cause",
                       reply.status_code == 409 and body.get("reloaded") is False and "direct" in error
                       and cause in error)
    scenario.check("restored: reload succeeds (200)", replies["restored"].status_code == 200
                   and replies["restored"].json().get("reloaded") is True)
    scenario.check("every request answered 200", set(scenario.responses) == {"200"})
    scenario.check("direct answers all from the old (= restored) bundle version",
                   direct and all(o.body["model_version"] == version for o in direct))
    scenario.check("feedback: every acknowledged event logged once", acked and acked == set(logged)
                   and len(logged) == len(set(logged)))


# ---- feedback events across a server restart ----------------------------------------------------------------------

async def _send_events(url: str, prefix: str, n_events: int, workers: int, deadline_s: float) -> dict:
    """Each worker sends its events in order, each retried (same request_id) until acknowledged; per event the
    answers it got. Returns {"acked": {request_id: accepted count}, "attempts": n, "statuses": {...}}."""
    acked: dict[str, int] = {}
    attempts, statuses = 0, {}
    deadline = time.monotonic() + deadline_s

    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        async def worker(w: int) -> None:
            nonlocal attempts
            for i in range(w, n_events, workers):
                event = {"user_id": f"fb-user-{i % 7}", "item_id": str(i % 12 + 1), "event": "exposure",
                         "request_id": f"{prefix}-{i}"}
                while time.monotonic() < deadline:
                    attempts += 1
                    try:
                        response = await client.post("/v1/feedback", json=event)
                        status = response.status_code
                    except httpx.TransportError as err:
                        status = "timeout" if isinstance(err, httpx.TimeoutException) else "refused"
                    statuses[str(status)] = statuses.get(str(status), 0) + 1
                    if status == 200:
                        acked[event["request_id"]] = acked.get(event["request_id"], 0) + \
                            response.json()["accepted"]
                        break
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.01)

        await asyncio.gather(*(worker(w) for w in range(workers)))
    return {"acked": acked, "attempts": attempts, "statuses": statuses}


def run_feedback_restart(stack: Stack, restarts: tuple[str, ...] = ("SIGKILL",), n_events: int = 600) -> Scenario:
    """Feedback clients (retrying until acknowledged) while the server process is stopped by each of `restarts`
    and started again on the same JSONL log; every event must be logged exactly once."""
    from serving.feedback import read_jsonl

    scenario = Scenario("feedback_restart", injected=f"server process stopped by {', '.join(restarts)} while "
                                                     f"{n_events} feedback events were being sent; restarted on the "
                                                     "same log")
    with timed(scenario):
        work = stack.workdir / "feedback_restart"
        shutil.rmtree(work, ignore_errors=True)
        settings = stack.settings("rel_feedback", feedback_log=str(work / "feedback.jsonl"))
        server = ProcessServer(settings, work)
        server.start()
        result: dict = {}
        sender = threading.Thread(target=lambda: result.update(asyncio.run(
            _send_events(server.url, "restart", n_events, workers=4, deadline_s=90 * len(restarts) + 60))))
        sender.start()
        codes = []
        try:
            for name in restarts:
                time.sleep(1.5)
                codes.append(server.stop(getattr(signal, name)))
                server.start()
            sender.join(180)
        finally:
            server.stop()
        rows = list(read_jsonl(settings.feedback_log))
        ids = [row["request_id"] for row in rows]
        sent = {f"restart-{i}" for i in range(n_events)}
        scenario.requests = result.get("attempts", 0)
        scenario.responses = dict(sorted(result.get("statuses", {}).items()))
        acked = result.get("acked", {})
        scenario.compared = (f"events sent {len(sent)}, acknowledged {len(acked)}, rows in the log {len(rows)}, "
                             f"distinct {len(set(ids))}")
        scenario.metrics = {"events_sent": len(sent), "events_acked": len(acked), "log_rows": len(rows),
                            "log_distinct": len(set(ids)), "retries": scenario.requests - len(acked),
                            "exit_codes": codes, "restart_s": [round(s, 1) for s in server.starts[1:]]}
        scenario.check("every event acknowledged", set(acked) == sent)
        scenario.check("no event lost: every event in the log", set(ids) == sent)
        scenario.check("none twice: one row per event", len(ids) == len(set(ids)))
        scenario.check("the restart happened during the traffic", scenario.responses.get("refused", 0) > 0)
        scenario.check("no answer other than 200 or a refused connection",
                       set(scenario.responses) <= {"200", "refused"})
    return scenario

