"""What every reliability scenario runs on: tiny bundles, a real redis-server, the app on loopback, HTTP traffic.

    stack = Stack.create(workdir)                 # bundles (tests/serving/bundles.py) + a redis-server of its own
    settings = stack.settings("rel_x", engine={"max_queue": 4})
    with ThreadServer(build_app(build_pipeline_from_settings(settings))) as server:   # uvicorn in this process
        outcomes = asyncio.run(drive(server.url, recommend_body, workers=4, seconds=3))
    with ProcessServer(settings, workdir) as server:   # uvicorn in a child (loadtests/asgi_app.py): killable, RSS

Everything listens on 127.0.0.1 only. Traffic is bounded twice: by a request count and by a deadline; every
request has a client timeout, and a request that runs past it is recorded as status "timeout" (a hang).
Scenario results are `Scenario` rows (REPORTS.md): what was injected, requests, responses by status, what was
compared, checks, verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from serving.experiments import FORCE_ARM_HEADER
from serving.settings import ServeSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
ENV = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "RAY_USAGE_STATS_ENABLED": "0", "VLLM_NO_USAGE_STATS": "1"}
COT = "<think>Dramas, then more dramas: the user wants another one.</think>"
START_TIMEOUT_S = 120.0
Request = tuple[str, str, object, dict]  # method, path, JSON body, headers


def set_env() -> None:
    """One thread per library and no hub access, as the Serve replica runs (call before importing torch)."""
    for name, value in ENV.items():
        os.environ.setdefault(name, value)
    import torch

    torch.set_num_threads(1)


# ---- the stack ----------------------------------------------------------------------------------------------------

@dataclass
class Stack:
    """Tiny policy and Rechead bundles, a redis-server (killable: scenarios restart it), a work directory."""

    workdir: Path
    sft: Path
    rechead: Path
    redis: object  # feature_store.local_redis.RedisServer

    @classmethod
    def create(cls, workdir: Path, redis=None) -> Stack:
        """Bundles under workdir/bundles (~10 s: the policy's tokenizer), and `redis` or a new redis-server."""
        from feature_store.local_redis import RedisServer
        from tests.hash_encoder import HashEncoder
        from tests.serving.bundles import write_policy_bundle, write_rechead_bundle

        workdir.mkdir(parents=True, exist_ok=True)
        root = workdir / "bundles"
        sft = root / "sft" if (root / "sft" / "manifest.json").is_file() else write_policy_bundle(root / "sft")
        rechead = root / "rechead"
        if not (rechead / "manifest.json").is_file():
            write_rechead_bundle(rechead, HashEncoder())
        return cls(workdir, sft, rechead, redis or RedisServer())

    def close(self) -> None:
        self.redis.close()

    def settings(self, namespace: str, **overrides) -> ServeSettings:
        """Arms `direct` (native engine, bundle sft) and `reasoning` (Rechead, direct fallback), 50/50, on this
        stack's Redis; the feedback log is workdir/<namespace>/feedback.jsonl. `overrides` replace top-level keys
        (a dict value is merged into a dict key)."""
        raw = {"host": "127.0.0.1", "redis_url": self.redis.url, "namespace": namespace, "max_k": 10,
               "request_timeout_s": 2.0, "redis_timeout_s": 0.25, "redis_retries": 1, "cold_start": "popularity",
               "reasoning_fallback": "direct", "feedback_log": str(self.workdir / namespace / "feedback.jsonl"),
               "engine": {"max_batch_size": 4, "batch_wait_ms": 2.0, "max_queue": 16, "retry_after_s": 1.0},
               "bundles": {"sft": str(self.sft), "rechead": str(self.rechead)},
               "experiments": [{"name": "reliability", "salt": "rel-v1", "arms": [
                   {"name": "direct", "mode": "direct", "engine": "native", "bundle": "sft", "weight": 50},
                   {"name": "reasoning", "mode": "reasoning", "bundle": "rechead", "weight": 50}]}]}
        for key, value in overrides.items():
            raw[key] = {**raw[key], **value} if isinstance(value, dict) and isinstance(raw.get(key), dict) else value
        return ServeSettings.model_validate(raw)


def user_histories(n: int, prefix: str = "rel-user") -> dict[str, list[str]]:
    """n users over the 12-item tiny catalog, histories of 2-5 items (deterministic)."""
    return {f"{prefix}-{i}": [str((i + j) % 12 + 1) for j in range(2 + i % 4)] for i in range(n)}


def seed_users(settings: ServeSettings, histories: dict[str, list[str]], cot: bool = True) -> None:
    """Each user's history, and (cot=True) a CoT and answer as the nearline job writes them (reasoning path cot)."""
    from feature_store.schema import UserFeatures, encode_history
    from feature_store.store import FeatureStore

    rows = [UserFeatures(user, 1.0, {"history": encode_history(h),
                                     **({"cot": COT, "answer": json.dumps([h[0]])} if cot else {})})
            for user, h in histories.items()]
    with FeatureStore(settings.redis_url, settings.namespace) as store:
        store.write(rows)


# ---- servers ------------------------------------------------------------------------------------------------------

def free_port() -> int:
    from feature_store.local_redis import free_port as pick

    return pick()


def wait_http(url: str, path: str, timeout_s: float, want: int = 200, alive: Callable[[], bool] = lambda: True
              ) -> float:
    """Poll GET url+path until it answers `want`; seconds waited; RuntimeError on timeout or when `alive()` fails."""
    start = time.monotonic()
    with httpx.Client(base_url=url, timeout=5) as http:
        while time.monotonic() - start < timeout_s:
            if not alive():
                raise RuntimeError(f"the server at {url} exited while starting")
            with contextlib.suppress(httpx.TransportError):
                if http.get(path).status_code == want:
                    return time.monotonic() - start
            time.sleep(0.1)
    raise RuntimeError(f"{url}{path} did not answer {want} within {timeout_s:g} s")


class ThreadServer:
    """An ASGI app under uvicorn in a daemon thread of this process, on 127.0.0.1:<free port>."""

    def __init__(self, app, port: int | None = None):
        import uvicorn

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False,
                                lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{self.port}", daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"uvicorn did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class ProcessServer:
    """The app under uvicorn in a child process (`loadtests/asgi_app.py`), so it can be killed and its RSS read."""

    def __init__(self, settings: ServeSettings, workdir: Path, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings_file = workdir / f"settings-{self.port}.json"
        self.settings_file.parent.mkdir(parents=True, exist_ok=True)
        self.settings_file.write_text(settings.model_dump_json())
        self.log_file = workdir / f"server-{self.port}.log"
        self.process: subprocess.Popen | None = None
        self.starts: list[float] = []  # seconds each start took until /readyz answered 200

    def start(self, timeout_s: float = START_TIMEOUT_S) -> float:
        env = {**os.environ, **ENV, "LOADTEST_SETTINGS": str(self.settings_file), "PYTHONPATH": str(REPO_ROOT)}
        command = [sys.executable, "-m", "uvicorn", "loadtests.asgi_app:create", "--factory", "--host", "127.0.0.1",
                   "--port", str(self.port), "--log-level", "warning", "--no-access-log"]
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        try:
            seconds = wait_http(self.url, "/readyz", timeout_s, alive=lambda: self.process.poll() is None)
        except RuntimeError as err:
            self.stop(signal.SIGKILL)
            raise RuntimeError(f"{err}; server log: {self.log_tail()}") from None
        self.starts.append(seconds)
        return seconds

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_bytes(self) -> int:
        import psutil

        return psutil.Process(self.pid).memory_info().rss

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 20.0) -> int | None:
        """Send `sig` and wait for the exit (SIGKILL after timeout_s); the exit code."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def log_tail(self, chars: int = 1500) -> str:
        return self.log_file.read_text(errors="replace")[-chars:] if self.log_file.is_file() else ""

    def __enter__(self) -> ProcessServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---- traffic ------------------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    """One request: when it started (monotonic s), how long it took, its status (an int, "timeout" or "error")."""

    started: float
    seconds: float
    status: int | str
    body: dict | None = None
    retry_after: str | None = None
    request: Request | None = None


async def send(client: httpx.AsyncClient, request: Request) -> Outcome:
    """One request; transport errors and client timeouts become statuses "error" / "timeout"."""
    method, path, body, headers = request
    started = time.monotonic()
    try:
        response = await client.request(method, path, json=body, headers=headers)
    except httpx.TimeoutException:
        return Outcome(started, time.monotonic() - started, "timeout", request=request)
    except httpx.TransportError:
        return Outcome(started, time.monotonic() - started, "error", request=request)
    try:
        parsed = response.json()
    except ValueError:
        parsed = None
    return Outcome(started, time.monotonic() - started, response.status_code,
                   parsed if isinstance(parsed, dict) else None, response.headers.get("retry-after"), request)


async def drive(url: str, make: Callable[[int, int], Request], workers: int, seconds: float,
                max_requests: int = 100_000, timeout_s: float = 10.0, pace_s: float = 0.0,
                stop: threading.Event | None = None) -> list[Outcome]:
    """`workers` closed-loop clients: worker w sends make(w, i) for i = 0, 1, ... until `seconds` have passed,
    `max_requests` were sent in all, or `stop` is set; `pace_s` of think time after each answer."""
    outcomes: list[Outcome] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)

    def more() -> bool:
        return time.monotonic() < deadline and len(outcomes) < max_requests and not (stop and stop.is_set())

    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits) as client:
        async def worker(w: int) -> None:
            i = 0
            while more():
                outcomes.append(await send(client, make(w, i)))
                i += 1
                if pace_s:
                    await asyncio.sleep(pace_s)

        await asyncio.gather(*(worker(w) for w in range(workers)))
    return outcomes


class Traffic:
    """`drive` in a background thread while the caller injects faults; `mark(name)` stamps phase boundaries."""

    def __init__(self, url: str, make: Callable[[int, int], Request], workers: int, seconds: float,
                 max_requests: int = 100_000, timeout_s: float = 10.0, pace_s: float = 0.0):
        self.stop_event = threading.Event()
        self.marks: dict[str, float] = {}
        self.outcomes: list[Outcome] = []
        self._args = (url, make, workers, seconds, max_requests, timeout_s, pace_s)
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)

    def _run(self) -> None:
        self.outcomes = asyncio.run(drive(*self._args, stop=self.stop_event))

    def __enter__(self) -> Traffic:
        self.mark("start")
        self._thread.start()
        return self

    def mark(self, name: str) -> float:
        self.marks[name] = time.monotonic()
        return self.marks[name]

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self._thread.join(60)
        self.mark("end")

    def between(self, first: str, last: str) -> list[Outcome]:
        """Outcomes of requests that started between two marks."""
        return [o for o in self.outcomes if self.marks[first] <= o.started < self.marks[last]]

    def within(self, first: str, last: str) -> list[Outcome]:
        """Outcomes of requests that started and finished between two marks."""
        return [o for o in self.between(first, last) if o.started + o.seconds < self.marks[last]]


def recommend(user: str, history: Sequence[str] | None = None, k: int = 5, arm: str | None = None) -> Request:
    body = {"user_id": user, "k": k, **({"history": list(history)} if history is not None else {})}
    return "POST", "/v1/recommend", body, {FORCE_ARM_HEADER: arm} if arm else {}


def statuses(outcomes: Iterable[Outcome]) -> dict[str, int]:
    """Responses by status code, as strings (JSON keys), sorted."""
    counts = Counter(str(o.status) for o in outcomes)
    return dict(sorted(counts.items()))


def latency_ms(outcomes: Sequence[Outcome], status: int | None = 200) -> dict[str, float]:
    """p50/p99/max latency (ms) of the outcomes with `status` (all when None); {} when there are none."""
    values = np.array([o.seconds for o in outcomes if status is None or o.status == status]) * 1000
    if not values.size:
        return {}
    return {"p50_ms": round(float(np.percentile(values, 50)), 1), "p99_ms": round(float(np.percentile(values, 99)), 1),
            "max_ms": round(float(values.max()), 1)}


def server_latency_ms(outcomes: Sequence[Outcome]) -> dict[str, float]:
    """p50/p99/max of the server-side `latency_ms` of the 200 answers (time inside the pipeline)."""
    values = np.array([o.body["latency_ms"] for o in outcomes if o.status == 200 and "latency_ms" in (o.body or {})])
    if not values.size:
        return {}
    return {"p50_ms": round(float(np.percentile(values, 50)), 1), "p99_ms": round(float(np.percentile(values, 99)), 1),
            "max_ms": round(float(values.max()), 1)}


def item_ids(outcome: Outcome) -> tuple[str, ...]:
    return tuple(i["item_id"] for i in (outcome.body or {}).get("items", []))


def has_reason(outcome: Outcome) -> bool:
    """An error answer carries a one-line reason: a non-empty string `detail`."""
    detail = (outcome.body or {}).get("detail")
    return isinstance(detail, str) and bool(detail.strip())


# ---- a scenario's row ---------------------------------------------------------------------------------------------

@dataclass
class Scenario:
    """One scenario's result: a row of reports/reliability.json (REPORTS.md shape, with a `verdict` key)."""

    name: str
    injected: str
    compared: str = ""
    requests: int = 0
    responses: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, object] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    seconds: float = 0.0
    notes: str = ""

    def check(self, name: str, ok: bool) -> bool:
        self.checks[name] = bool(ok)
        return bool(ok)

    def count(self, outcomes: Sequence[Outcome]) -> None:
        """Add outcomes to `requests` and `responses`."""
        self.requests += len(outcomes)
        merged = Counter(self.responses)
        merged.update(statuses(outcomes))
        self.responses = dict(sorted(merged.items()))

    @property
    def failed(self) -> list[str]:
        return [name for name, ok in self.checks.items() if not ok]

    @property
    def verdict(self) -> str:
        return "pass" if self.checks and not self.failed else "fail"

    def row(self) -> dict:
        return {"name": self.name, "verdict": self.verdict, "injected": self.injected, "requests": self.requests,
                "responses": self.responses, "compared": self.compared, "checks": self.checks,
                "failed_checks": self.failed, "metrics": self.metrics, "seconds": {"run": round(self.seconds, 1)},
                "notes": self.notes}


@contextlib.contextmanager
def timed(scenario: Scenario):
    start = time.monotonic()
    try:
        yield scenario
    finally:
        scenario.seconds = time.monotonic() - start
