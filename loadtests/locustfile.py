"""Locust users of the reasonrec online API: POST /v1/recommend per scenario (loopback only).

    locust -f loadtests/locustfile.py --headless -u 8 -r 8 -t 20s --host http://127.0.0.1:8000 DirectNativeUser

One user class per scenario; each user sends one request after another (no think time: N users = N requests
in flight):

- `DirectNativeUser` (scenario `direct_native`): a real ML-100k history in the body, header X-Reasonrec-Arm
  naming the native arm;
- `DirectVLLMUser` (`direct_vllm`): the same, forced onto the vLLM arm;
- `ReasoningCachedUser` (`reasoning_cached`): the user id only, forced onto the reasoning arm: the stored history
  and the cached user vector answer (Redis -> FAISS).

Any non-2xx is a failure (locust counts it). A 2xx whose `path` is not the scenario's (e.g. `cot` or
`beam_search` where `cached_vector` was expected) is counted separately as a path mismatch, not a failure,
and written to the samples file.

Inputs, `--loadtest-data FILE` (JSON written by loadtests/run.py): {"k": int, "arms": {scenario: arm name},
"direct": [{"user_id", "history"}], "reasoning": [user ids]}. Without it, histories are sampled from the
ML-100k temporal split (`--loadtest-split`), the arms are `direct_native` / `direct_vllm` / `reasoning`, and the
reasoning users are the same users (their Redis rows must hold a CoT: run the nearline job first).

`--loadtest-samples FILE`: on exit, write every request as [start unix s, client ms, ok, server ms, path ok]
(server ms: the response's `latency_ms`, the pipeline's own time), for exact percentiles outside locust's
rounded buckets.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from locust import FastHttpUser, constant, events, task

DEFAULT_ARMS = {"direct_native": "direct_native", "direct_vllm": "direct_vllm", "reasoning_cached": "reasoning"}
EXPECTED_PATH = {"direct_native": "beam_search", "direct_vllm": "beam_search", "reasoning_cached": "cached_vector"}
ARM_HEADER = "X-Reasonrec-Arm"
SAMPLES: list[list] = []
_DATA: dict | None = None


@events.init_command_line_parser.add_listener
def _arguments(parser) -> None:
    parser.add_argument("--loadtest-data", default="", help="JSON of users and histories (loadtests/run.py)")
    parser.add_argument("--loadtest-split", default="data/splits/ml-100k-temporal", help="split to sample from")
    parser.add_argument("--loadtest-samples", default="", help="write raw per-request samples here on exit")
    parser.add_argument("--loadtest-k", type=int, default=10)
    parser.add_argument("--loadtest-history-len", type=int, default=50, help="last N items of each history")


def _load(options) -> dict:
    global _DATA
    if _DATA is None:
        if options.loadtest_data:
            _DATA = json.loads(Path(options.loadtest_data).read_text())
        else:
            _DATA = sample_split(Path(options.loadtest_split), 200, options.loadtest_history_len, options.loadtest_k)
    return _DATA


def sample_split(split_dir: Path, n_users: int, history_len: int, k: int, seed: int = 0) -> dict:
    """`n_users` users of the split's training part with their last `history_len` items (oldest first)."""
    from feature_store.materialize import histories_from_split

    users = list(histories_from_split(split_dir, "train"))
    chosen = random.Random(seed).sample(users, min(n_users, len(users)))
    return {"k": k, "arms": DEFAULT_ARMS,
            "direct": [{"user_id": u, "history": h[-history_len:]} for u, h in chosen],
            "reasoning": [u for u, _ in chosen]}


@events.quitting.add_listener
def _write_samples(environment, **_) -> None:
    path = getattr(environment.parsed_options, "loadtest_samples", "") if environment.parsed_options else ""
    if path:
        Path(path).write_text(json.dumps(SAMPLES))


class RecommendUser(FastHttpUser):
    abstract = True
    wait_time = constant(0)
    scenario = ""

    def on_start(self) -> None:
        data = _load(self.environment.parsed_options)
        self.k, self.arm = int(data["k"]), data["arms"][self.scenario]
        self.rng = random.Random()

    def body(self) -> dict:
        raise NotImplementedError

    @task
    def recommend(self) -> None:
        started, t0 = time.time(), time.perf_counter()
        with self.client.post("/v1/recommend", json=self.body(), headers={ARM_HEADER: self.arm},
                              name=self.scenario, catch_response=True) as response:
            elapsed_ms = 1000 * (time.perf_counter() - t0)
            ok = 200 <= (response.status_code or 0) < 300
            server_ms, path_ok = None, None
            if ok:
                try:
                    answer = response.json()
                    server_ms, path_ok = answer.get("latency_ms"), answer.get("path") == EXPECTED_PATH[self.scenario]
                except (ValueError, AttributeError):
                    ok = False
                    response.failure("2xx without a JSON body")
            else:
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
            SAMPLES.append([started, round(elapsed_ms, 3), ok, server_ms, path_ok])


class DirectNativeUser(RecommendUser):
    scenario = "direct_native"

    def body(self) -> dict:
        user = self.rng.choice(_DATA["direct"])
        return {"user_id": user["user_id"], "history": user["history"], "k": self.k, "mode": "direct"}


class DirectVLLMUser(DirectNativeUser):
    scenario = "direct_vllm"


class ReasoningCachedUser(RecommendUser):
    scenario = "reasoning_cached"

    def body(self) -> dict:
        return {"user_id": self.rng.choice(_DATA["reasoning"]), "k": self.k, "mode": "reasoning"}
