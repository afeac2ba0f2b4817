"""Scenarios `replica_kill` and `engine_replica_kill`: the real Ray Serve stack (`serving.deployments.start`), one
replica SIGKILLed.

Local Ray on loopback (native direct engine on the tiny policy, Rechead + MiniLM, real Redis). Clients keep
requests in flight; one replica process (found by its Ray process title `ServeReplica:reasonrec:<deployment>`)
is SIGKILLed; traffic goes on until Serve has started a replacement and it answers, then a little longer.
Properties: no request runs past the client timeout (a hang), every answer is 200 or 503, Serve restarts the
replica (a new process), and every request after that succeeds.

- target "ingress" (`replica_kill`, the default topology: engines inside the ingress replicas): a request that was
  inside the killed replica when it died is answered 500 "Internal Server Error" by Ray Serve's HTTP proxy itself
  (Ray 2.60 `get_http_response_status` maps RayActorError to 500), and with one replica new requests wait for the
  restart; the app never sees either. The check allows such 500s only for requests that started before the kill,
  at most one per client (`in_flight_500`).
- target "engine" (`engine_replica_kill`, `engine.replicas > 0`: the direct engine in its own deployment): the
  ingress survives; a request whose engine replica died is retried once and otherwise answered 503 + Retry-After,
  one that waits for a replacement gets the engine timeout (503) — no 500 is allowed.
"""

from __future__ import annotations

import os
import signal
import time

from loadtests.reliability.harness import (
    Scenario,
    Stack,
    Traffic,
    free_port,
    latency_ms,
    recommend,
    seed_users,
    timed,
    user_histories,
    wait_http,
)

CLIENT_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 2.0


def replica_processes(deployment: str = "reasonrec") -> list:
    """This process's descendants that are replicas of `deployment` of the reasonrec app (psutil.Process)."""
    import psutil

    found, title = [], f"ServeReplica:reasonrec:{deployment}"
    for proc in psutil.Process().children(recursive=True):
        try:
            if title in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _wait_replicas(n: int, exclude: set[int], timeout_s: float, deployment: str) -> float | None:
    """Seconds until `n` replica processes other than those of `exclude` (the killed one) run; None on timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if len({p.pid for p in replica_processes(deployment)} - exclude) >= n:
            return time.monotonic() - start
        time.sleep(0.5)
    return None


def _wait_direct_answer(url: str, timeout_s: float) -> float | None:
    """Seconds until a direct request is answered 200 (the new engine replica is warm; the ingress's /readyz does
    not wait for it); None on timeout."""
    import httpx

    start = time.monotonic()
    method, path, body, headers = recommend("replica-probe", ["1", "2", "3"], k=5, arm="direct")
    with httpx.Client(base_url=url, timeout=5) as http:
        while time.monotonic() - start < timeout_s:
            try:
                if http.request(method, path, json=body, headers=headers).status_code == 200:
                    return time.monotonic() - start
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    return None


def run_replica_kill(stack: Stack, replicas: int = 2, workers: int = 4, restart_within_s: float = 150.0,
                     after_s: float = 5.0, target: str = "ingress") -> Scenario:
    """SIGKILL one of `replicas` Serve replicas of the ingress (target "ingress") or of the direct engine's own
    deployment (target "engine", 1 ingress replica) under traffic; wait for Serve to replace it; judge."""
    from serving import deployments

    engine = target == "engine"
    name = ("engine_" if engine else "") + ("replica_kill" if replicas > 1 else "replica_kill_single")
    deployment = "engine-0" if engine else "reasonrec"
    scenario = Scenario(name, injected=f"SIGKILL of 1 of {replicas} Ray Serve replicas of the "
                                       f"{'engine deployment' if engine else 'ingress (engines inside)'} under "
                                       f"{workers} clients")
    users = user_histories(8, "replica")
    with timed(scenario):
        extra = {"engine": {"replicas": replicas}} if engine else {}
        settings = stack.settings("rel_replica", port=free_port(), request_timeout_s=REQUEST_TIMEOUT_S, **extra)
        seed_users(settings, users)
        for name, value in deployments.REPLICA_ENV.items():
            os.environ.setdefault(name, value)
        token = os.environ.pop(deployments.ADMIN_TOKEN_ENV, None)
        try:
            cpus = {"num_replicas": 1, "replica_cpus": 0.5, "engine_cpus": 1.0 / replicas} if engine else {
                "num_replicas": replicas, "replica_cpus": 1.0 / replicas}
            url = deployments.start(settings, num_cpus=2, **cpus)
            startup_s = wait_http(url, "/readyz", 240)
            names = sorted(users)

            def make(w: int, i: int):
                if w % 2:
                    return recommend(names[(w + i) % len(names)], None, k=5, arm="reasoning")
                return recommend(f"replica-{w}-{i}", ["1", "2", "3"], k=5, arm="direct")

            before = {p.pid for p in replica_processes(deployment)}
            with Traffic(url, make, workers=workers, seconds=restart_within_s + 60, max_requests=100_000,
                         timeout_s=CLIENT_TIMEOUT_S, pace_s=0.05) as traffic:
                time.sleep(3.0)
                victim = replica_processes(deployment)[0].pid
                traffic.mark("kill")
                os.kill(victim, signal.SIGKILL)
                restarted_s = _wait_replicas(replicas, {victim}, restart_within_s, deployment)
                answers = _wait_direct_answer if engine else lambda u, t: wait_http(u, "/readyz", t)
                ready_s = answers(url, 60) if restarted_s is not None else None
                traffic.mark("restarted")
                time.sleep(after_s + (5.0 if replicas == 1 else 0.0))
                traffic.mark("settled")
                time.sleep(after_s)
            after = {p.pid for p in replica_processes(deployment)}
        finally:
            deployments.stop()
            if token is not None:
                os.environ[deployments.ADMIN_TOKEN_ENV] = token
        _judge(scenario, traffic, victim, before, after, replicas, startup_s, restarted_s, ready_s, engine)
    return scenario


def _judge(scenario: Scenario, traffic: Traffic, victim: int, before: set[int], after: set[int], replicas: int,
           startup_s: float, restarted_s: float | None, ready_s: float | None, engine: bool) -> None:
    outcomes = traffic.outcomes
    scenario.count(outcomes)
    kill = traffic.marks["kill"]
    in_flight_500 = [] if engine else [o for o in outcomes if o.status == 500 and o.started < kill]
    other = [o for o in outcomes if o.status not in (200, 503) and o not in in_flight_500]
    settled = traffic.between("settled", "end")
    scenario.compared = (f"replica pids before {sorted(before)} -> after {sorted(after)}; answers after the "
                         f"replacement: {sum(o.status == 200 for o in settled)}/{len(settled)} 200")
    scenario.metrics = {"replicas": replicas, "killed_pid": victim, "startup_s": round(startup_s, 1),
                        "replica_back_s": None if restarted_s is None else round(restarted_s, 1),
                        "ready_again_s": None if ready_s is None else round(ready_s, 1),
                        "in_flight_500": len(in_flight_500), "timeouts": sum(o.status == "timeout" for o in outcomes),
                        "during_outage": latency_ms(traffic.between("kill", "restarted"), None), **latency_ms(outcomes)}
    scenario.check("no request hangs past the client timeout", not any(o.status == "timeout" for o in outcomes))
    if engine:
        shed = [o for o in outcomes if o.status == 503]
        scenario.metrics["answers_503"] = len(shed)
        scenario.check("every answer 200 or 503", not other)
        scenario.check("every 503 has Retry-After >= 1", all(o.retry_after and int(o.retry_after) >= 1 for o in shed))
        scenario.check("no request slower than the request timeout + 1 s",
                       all(o.seconds <= REQUEST_TIMEOUT_S + 1.0 for o in outcomes))
    else:
        scenario.check("every answer 200 or 503 (but Ray's 500 for requests inside the killed replica)", not other)
        scenario.check("Ray's in-flight 500s: at most one per client", len(in_flight_500) <= 4)
    scenario.check("Serve started a replacement replica", restarted_s is not None and victim not in after
                   and len(after) == replicas)
    scenario.check("every request after the replacement succeeds", settled and all(o.status == 200 for o in settled))
    scenario.notes = ("the engine runs in its own deployment: the ingress maps a lost engine replica to 503 + "
                      "Retry-After (one retry first) and a wait for a replacement to the engine timeout (503)"
                      if engine else
                      "Ray Serve's proxy answers 500 for a request in flight inside a replica that dies "
                      "(RayActorError); a client retry, or a gateway retry on idempotent calls, covers it; "
                      "engine_replica_kill shows the topology without it (engine.replicas > 0)")
