"""A direct engine behind a call (serving/engine/remote.py): refusals keep their kind across the wire, the host
batches a synchronous engine, and the pipeline answers a lost or silent engine with a 503 inside its budget."""

from __future__ import annotations

import asyncio
import time

import pytest

from serving.engine import DirectQuery, ScoredItem
from serving.engine.remote import EngineHost, EngineReply, RemoteDirectEngine, reply_of, result_of
from serving.errors import (
    DependencyUnavailable,
    EngineOverloaded,
    EngineTimeout,
    RequestInvalid,
    http_status_of,
)
from serving.schemas import RecommendRequest
from tests.serving.bundles import tiny_catalog
from tests.serving.fakes import FakeAsyncEngine, FakeEngine, make_pipeline

ITEMS = [ScoredItem("3", "Film 3", -0.5), ScoredItem("1", "Film 1", -1.5)]


@pytest.mark.parametrize("error, status, retry_after", [
    (RequestInvalid("the history is empty"), 422, None),
    (EngineOverloaded("queue full", 3.0), 503, "3"),
    (EngineTimeout("too slow", 2.0), 503, "2"),
    (DependencyUnavailable("engine", "gone", 4.0), 503, "4"),  # not a refusal kind of its own: sent as overloaded
])
def test_a_refusal_crosses_the_wire_as_the_same_answer(error, status, retry_after):
    reply = reply_of(error)
    assert reply.items == () and reply.refusal is not None
    with pytest.raises(type(error) if not isinstance(error, DependencyUnavailable) else EngineOverloaded) as raised:
        result_of(reply)
    got_status, detail, headers = http_status_of(raised.value)
    assert got_status == status and detail.endswith(error.detail.split(": ")[-1])
    assert headers.get("Retry-After") == retry_after


def test_items_cross_the_wire_in_order():
    assert result_of(reply_of(ITEMS)) == ITEMS
    assert result_of(EngineReply(tuple(ITEMS))) == ITEMS


@pytest.mark.parametrize("engine", [FakeEngine(), FakeAsyncEngine()])
def test_the_host_answers_like_its_engine(engine):
    host = EngineHost.of(engine, max_batch_size=4, batch_wait_ms=1, max_queue=8, timeout_s=2.0)

    async def run():
        await host.warm()
        return await asyncio.gather(host.recommend(DirectQuery(("1", "2"), 3)), host.recommend(DirectQuery((), 3)))

    answer, refused = asyncio.run(run())
    assert [i.item_id for i in result_of(answer)] == ["12", "11", "10"]
    assert refused.refusal == "invalid" and "empty" in refused.detail
    assert host.describe()["engine"] == "fake"
    host.close()


def test_the_host_times_a_slow_engine_out_with_a_refusal():
    host = EngineHost.of(FakeAsyncEngine(delay_s=1.0), timeout_s=0.05)
    reply = asyncio.run(host.recommend(DirectQuery(("1",), 2)))
    assert reply.refusal == "timeout" and reply.retry_after_s == 1.0


def _remote(call, version: str = FakeEngine.bundle_version) -> RemoteDirectEngine:
    async def describe():
        return {"engine": "fake", "bundle_version": version}

    return RemoteDirectEngine(call, describe, tiny_catalog(), {"bundle_version": FakeEngine.bundle_version,
                                                                "kind": "policy"})


def test_warm_up_refuses_engine_replicas_that_serve_another_version():
    host = EngineHost.of(FakeEngine())
    asyncio.run(_remote(host.recommend).warm_async())
    with pytest.raises(DependencyUnavailable, match="redeploy the engine deployment"):
        asyncio.run(_remote(host.recommend, version="policy-v0").warm_async())


@pytest.mark.integration
@pytest.mark.timeout(30)
def test_the_pipeline_serves_through_the_call_and_answers_a_lost_or_silent_engine_with_503(settings, store):
    host = EngineHost.of(FakeEngine(), max_batch_size=4, batch_wait_ms=1, max_queue=8)
    state = {"mode": "ok"}

    async def call(query):
        if state["mode"] == "lost":
            raise DependencyUnavailable("engine", "the engine replica was lost while answering; retry", 2.0)
        if state["mode"] == "silent":
            await asyncio.sleep(60)
        return await host.recommend(query)

    remote = _remote(call)
    pipeline = make_pipeline(settings, store, engine=remote, warm=False)
    asyncio.run(pipeline.warm_async())
    request = RecommendRequest(user_id="u1", history=["1", "2"], k=3)
    answer = asyncio.run(pipeline.recommend(request, "direct"))
    assert [i.item_id for i in answer.items] == ["12", "11", "10"] and answer.model_version == "policy-v1"
    for mode, error in (("lost", DependencyUnavailable), ("silent", EngineTimeout)):
        state["mode"] = mode
        started = time.perf_counter()
        with pytest.raises(error) as raised:
            asyncio.run(pipeline.recommend(request, "direct"))
        assert time.perf_counter() - started < settings.request_timeout_s + 0.5
        status, _, headers = http_status_of(raised.value)
        assert status == 503 and int(headers["Retry-After"]) >= 1
    pipeline.close()
