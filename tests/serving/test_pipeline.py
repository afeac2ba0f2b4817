"""The pipeline on a real Redis, a tiny Rechead and a fake direct engine: arms, modes, fallbacks, limits, metrics."""

from __future__ import annotations

import asyncio
import json

import pytest

from feature_store.schema import UserFeatures, encode_history
from serving.errors import (
    EngineOverloaded,
    EngineTimeout,
    RequestInvalid,
    UnknownArm,
    UnknownUser,
    http_status_of,
)
from serving.schemas import FeedbackEvent, RecommendRequest
from serving.user_vectors import UserVectorStore
from tests.serving.fakes import (
    FakeAsyncEngine,
    FakeEngine,
    dead_redis_url,
    make_pipeline,
    make_service,
    make_settings,
    make_store,
    user_in_arm,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30), pytest.mark.usefixtures("one_torch_thread")]
COT = "<think>Recent picks lean to comedies.</think>"



@pytest.fixture
def pipeline(settings, store, rechead_bundle, hash_encoder):
    p = make_pipeline(settings, store, make_service(rechead_bundle, store, hash_encoder))
    yield p
    p.close()


def ask(pipeline, user: str, history=None, forced: str | None = None, **fields):
    request = RecommendRequest(user_id=user, history=history, **fields)
    return asyncio.run(pipeline.recommend(request, forced))


def put(store, user: str, history: list[str], cot: str | None = None) -> None:
    fields = {"history": encode_history(history)}
    if cot:
        fields.update(cot=cot, answer=json.dumps(["4"]))
    store.write([UserFeatures(user, 1.0, fields)])


def metric(pipeline, name: str, **labels) -> float:
    return pipeline.metrics.registry.get_sample_value(f"reasonrec_{name}", labels) or 0.0


def test_the_arm_decides_the_mode_and_every_response_says_what_answered(pipeline):
    direct_user, reasoning_user = user_in_arm(pipeline, "direct"), user_in_arm(pipeline, "reasoning")
    d = ask(pipeline, direct_user, ["1", "2"], k=3)
    assert (d.mode_used, d.arm, d.path, d.model_version, d.fallback) == ("direct", "direct", "beam_search",
                                                                         "policy-v1", None)
    assert [i.item_id for i in d.items] == ["12", "11", "10"] and len(d.request_id) == 32 and d.latency_ms > 0
    r = ask(pipeline, reasoning_user, ["1", "2"], k=3)
    assert (r.mode_used, r.arm, r.path, r.fallback) == ("reasoning", "reasoning", "history_only", "no_cached_cot")
    assert r.model_version == pipeline.reasoning["reasoning"].bundle_version
    assert metric(pipeline, "requests_total", endpoint="/v1/recommend", mode="direct", arm="direct",
                  status="200") == 1
    assert metric(pipeline, "fallbacks_total", arm="reasoning", reason="no_cached_cot") == 1
    assert metric(pipeline, "cot_cache_lookups_total", result="miss") == 1


def test_reasoning_paths_cot_then_cached_vector(pipeline, store):
    user = user_in_arm(pipeline, "reasoning")
    put(store, user, ["1", "2", "3"], COT)
    first = ask(pipeline, user, explain=True)
    second = ask(pipeline, user)
    assert (first.path, first.explanation, second.path, second.explanation) == ("cot", COT, "cached_vector", None)
    assert [i.item_id for i in first.items] == [i.item_id for i in second.items]
    assert metric(pipeline, "cot_cache_lookups_total", result="hit") == 2
    assert metric(pipeline, "dependency_latency_seconds_count", dependency="faiss") == 2


def test_explicit_mode_needs_the_capability(pipeline, settings, store):
    reasoning_user, direct_user = user_in_arm(pipeline, "reasoning"), user_in_arm(pipeline, "direct")
    assert ask(pipeline, reasoning_user, ["1"], mode="direct").mode_used == "direct"
    with pytest.raises(RequestInvalid, match="arm 'direct' serves direct mode and has no reasoning model"):
        ask(pipeline, direct_user, ["1"], mode="reasoning")
    assert ask(pipeline, direct_user, ["1"], forced="reasoning", mode="reasoning").arm == "reasoning"


def test_forced_arm_k_limit_and_unknown_items(pipeline):
    user = user_in_arm(pipeline, "direct")
    assert ask(pipeline, user, ["1"], forced="reasoning").arm == "reasoning"
    with pytest.raises(UnknownArm, match="unknown arm 'nope'"):
        ask(pipeline, user, ["1"], forced="nope")
    with pytest.raises(RequestInvalid, match="k must be ≤ 10, got 11"):
        ask(pipeline, user, ["1"], k=11)
    for arm in ("direct", "reasoning"):
        with pytest.raises(RequestInvalid, match="unknown item id\\(s\\) in the history: 'x9'"):
            ask(pipeline, user, ["1", "x9"], forced=arm)
    assert metric(pipeline, "requests_total", endpoint="/v1/recommend", mode="auto", arm="none",
                  status="422") == 1


def test_stored_history_cold_start_popularity_and_404(pipeline, settings, store, tmp_path, rechead_bundle,
                                                       hash_encoder):
    put(store, "known", ["1", "2"])
    assert ask(pipeline, "known", forced="direct").items[0].item_id == "12"
    for arm in ("direct", "reasoning"):
        cold = ask(pipeline, "nobody", forced=arm, k=2)
        assert (cold.mode_used, cold.path, cold.fallback) == ("popularity", "popularity", "cold_start")
        assert cold.items[0].item_id == "5" and cold.model_version != "unknown"
    strict = make_pipeline(settings.model_copy(update={"cold_start": "404"}), store,
                           make_service(rechead_bundle, store, hash_encoder))
    for arm in ("direct", "reasoning"):
        for history in (None, []):  # an empty history is no history either
            with pytest.raises(UnknownUser):
                ask(strict, "nobody", history, forced=arm)
    strict.close()


def test_reasoning_fallback_direct_uses_the_engine(settings, store, rechead_bundle, hash_encoder):
    pipeline = make_pipeline(settings, store, make_service(rechead_bundle, store, hash_encoder))
    put(store, "u1", ["1", "2"])
    direct_settings = settings.model_copy(update={"reasoning_fallback": "direct"})
    fallback = make_pipeline(direct_settings, store, make_service(rechead_bundle, store, hash_encoder))
    answer = ask(fallback, "u1", forced="reasoning")
    assert (answer.mode_used, answer.path, answer.fallback, answer.model_version) == ("direct", "beam_search",
                                                                                      "no_cached_cot", "policy-v1")
    assert UserVectorStore(store).queued() == {"u1"}
    lone = make_pipeline(direct_settings, store, make_service(rechead_bundle, store, hash_encoder),
                         direct_fallback=False)  # no engine on the arm: history-only instead
    assert ask(lone, "u1", forced="reasoning").path == "history_only"
    pipeline.close()


def test_redis_down_never_fails_a_request(tmp_path, rechead_bundle, hash_encoder):
    settings = make_settings(dead_redis_url(), tmp_path)
    with make_store(settings) as dead:
        pipeline = make_pipeline(settings, dead, make_service(rechead_bundle, dead, hash_encoder))
        r = ask(pipeline, "u1", ["1", "2"], forced="reasoning")
        assert (r.mode_used, r.path, r.fallback) == ("reasoning", "history_only", "redis_unavailable")
        assert ask(pipeline, "u1", ["1", "2"], forced="direct").fallback is None  # direct needs no Redis
        for arm in ("direct", "reasoning"):
            cold = ask(pipeline, "u1", forced=arm)
            assert (cold.mode_used, cold.fallback) == ("popularity", "redis_unavailable")
        ready, reasons = asyncio.run(pipeline.ready())
        assert not ready and any(r.startswith("redis unreachable") for r in reasons)


def test_overload_is_503_with_retry_after(settings, store):
    engine = FakeEngine(delay_s=0.3)
    tight = settings.model_copy(update={"engine": settings.engine.model_copy(
        update={"max_batch_size": 1, "max_queue": 1, "retry_after_s": 2.0})})
    pipeline = make_pipeline(tight, store, engine=engine, warm=False)
    user = user_in_arm(pipeline, "direct")

    async def burst():
        calls = [pipeline.recommend(RecommendRequest(user_id=user, history=["1"]), None) for _ in range(4)]
        return await asyncio.gather(*calls, return_exceptions=True)

    out = asyncio.run(burst())
    refused = [o for o in out if isinstance(o, EngineOverloaded)]
    assert refused and all(not isinstance(o, Exception) or isinstance(o, EngineOverloaded) for o in out)
    assert http_status_of(refused[0]) == (503, refused[0].detail, {"Retry-After": "2"})
    assert "engine sft overloaded" in refused[0].detail
    assert metric(pipeline, "requests_total", endpoint="/v1/recommend", mode="direct", arm="direct",
                  status="503") == len(refused)
    pipeline.close()


def test_engine_batch_sizes_are_a_histogram(settings, store):
    engine = FakeEngine()
    wide = settings.model_copy(update={"engine": settings.engine.model_copy(
        update={"max_batch_size": 4, "batch_wait_ms": 50})})
    pipeline = make_pipeline(wide, store, engine=engine, warm=False)
    user = user_in_arm(pipeline, "direct")

    async def burst(n: int):
        await asyncio.gather(*(pipeline.recommend(RecommendRequest(user_id=user, history=["1"]), None)
                               for _ in range(n)))

    asyncio.run(burst(6))
    assert [len(b) for b in engine.batches] == [4, 2]
    assert metric(pipeline, "engine_batch_size_count", engine="sft") == 2
    assert metric(pipeline, "engine_batch_size_sum", engine="sft") == 6
    assert metric(pipeline, "engine_batch_size_bucket", engine="sft", le="2.0") == 1
    pipeline.close()


def test_a_slow_engine_times_out_within_the_budget(settings, store):
    pipeline = make_pipeline(settings.model_copy(update={"request_timeout_s": 0.3}), store,
                             engine=FakeEngine(delay_s=1.0), warm=False)
    user = user_in_arm(pipeline, "direct")

    async def timed():
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(Exception) as err:
            await pipeline.recommend(RecommendRequest(user_id=user, history=["1"]), None)
        return err.value, loop.time() - start

    error, seconds = asyncio.run(timed())
    assert http_status_of(error)[0] == 503 and seconds < 0.6
    pipeline.close()


def test_feedback_arm_defaults_to_the_assignment_and_dedupes(pipeline, settings):
    user = user_in_arm(pipeline, "reasoning")
    events = [FeedbackEvent(user_id=user, item_id="3", event="exposure", request_id="r1"),
              FeedbackEvent(user_id=user, item_id="3", event="click", request_id="r1", arm="direct")]
    first = asyncio.run(pipeline.feedback(events))
    again = asyncio.run(pipeline.feedback(events[0]))
    assert (first.accepted, first.duplicates, again.accepted, again.duplicates) == (2, 0, 0, 1)
    rows = [json.loads(line) for line in open(settings.feedback_log)]
    assert [(r["arm"], r["event"], r["request_id"]) for r in rows] == [("reasoning", "exposure", "r1"),
                                                                      ("direct", "click", "r1")]
    assert metric(pipeline, "feedback_events_total", arm="reasoning", event="exposure") == 1


def test_models_and_readiness(pipeline, settings, store):
    models = pipeline.models().models
    assert [(m.arm, m.mode, m.ready) for m in models] == [("direct", "direct", True), ("reasoning", "reasoning", True)]
    assert models[1].details["direct_fallback"] is True and models[1].details["kind"] == "rechead"
    assert asyncio.run(pipeline.ready()) == (True, [])
    cold = make_pipeline(settings, store, None, warm=False)
    ready, reasons = asyncio.run(cold.ready())
    assert not ready and reasons == ["arm 'direct': engine not warm",
                                     "arm 'reasoning': bundle 'rechead' not loaded (no model)"]
    with pytest.raises(Exception) as err:
        ask(cold, "u", ["1"], forced="reasoning")
    assert http_status_of(err.value)[0] == 503


def test_an_engine_that_batches_itself_is_awaited_directly(settings, store):
    engine = FakeAsyncEngine(delay_s=0.2)
    tight = settings.model_copy(update={"engine": settings.engine.model_copy(update={"max_queue": 2})})
    pipeline = make_pipeline(tight, store, engine=engine, warm=False)
    asyncio.run(pipeline.warm_async())
    user = user_in_arm(pipeline, "direct")

    async def burst():
        calls = [pipeline.recommend(RecommendRequest(user_id=user, history=["1"], k=2), None) for _ in range(3)]
        return await asyncio.gather(*calls, return_exceptions=True)

    out = asyncio.run(burst())
    assert [type(o).__name__ for o in out] == ["RecommendResponse", "RecommendResponse", "EngineOverloaded"]
    assert [i.item_id for i in out[0].items] == ["12", "11"] and engine.batches == []  # no micro-batcher
    assert "2 requests in flight" in out[2].detail
    assert metric(pipeline, "engine_queue_depth", engine="sft") == 0
    assert pipeline.models().models[0].ready is True
    slow = make_pipeline(settings.model_copy(update={"request_timeout_s": 0.1}), store,
                         engine=FakeAsyncEngine(delay_s=1.0), warm=False)
    with pytest.raises(EngineTimeout, match="engine sft did not answer within"):
        ask(slow, user, ["1"])
    pipeline.close()
    assert engine.shut_down


def test_reasoning_calls_beyond_the_in_flight_limit_are_refused_at_once(settings, store, rechead_bundle,
                                                                        hash_encoder):
    import threading

    gate = threading.Event()
    service = make_service(rechead_bundle, store, hash_encoder)
    blocking = service.recommend_blocking

    def held(*args):
        gate.wait(5)
        return blocking(*args)

    service.recommend_blocking = held
    pipeline = make_pipeline(settings.model_copy(update={"reasoning_max_in_flight": 2}), store, service)

    async def burst():
        calls = [asyncio.create_task(pipeline.recommend(
            RecommendRequest(user_id=f"r{i}", history=["1"], k=2), "reasoning")) for i in range(3)]
        await asyncio.sleep(0.2)
        refused = calls[2].done() and isinstance(calls[2].exception(), EngineOverloaded)
        gate.set()
        return refused, await asyncio.gather(*calls, return_exceptions=True)

    refused_at_once, out = asyncio.run(burst())
    assert refused_at_once and "2 requests running" in out[2].detail
    assert [type(o).__name__ for o in out[:2]] == ["RecommendResponse", "RecommendResponse"]
    assert asyncio.run(pipeline.recommend(RecommendRequest(user_id="r9", history=["1"], k=2), "reasoning")).items
    pipeline.close()
