"""The native engine in a child process: the same answers as in-process, refusals per query, a dead child costs its
batch a 503 and comes back, a bad bundle fails at start with the child's reason, shutdown stops the child."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from serving.engine import DirectQuery
from serving.engine.batcher import batch_wait_ms_for
from serving.engine.native import NativeDirectEngine
from serving.engine.process import EngineProcessError, ProcessDirectEngine
from serving.errors import DependencyUnavailable, RequestInvalid
from serving.loading import build_native_engine
from serving.settings import ServeSettings
from tests.serving.bundles import write_policy_bundle

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return write_policy_bundle(tmp_path_factory.mktemp("process") / "bundle")


@pytest.fixture(scope="module")
def engine(bundle):
    engine = ProcessDirectEngine(bundle, start_timeout_s=120)
    yield engine
    engine.shutdown()


def queries(catalog) -> list[DirectQuery]:
    ids = list(catalog.item_ids)
    return [DirectQuery(tuple(ids[:3]), 4), DirectQuery(tuple(ids[5:9]), 2, exclude_seen=False),
            DirectQuery(("no-such-item",), 3), DirectQuery(tuple(ids[2:4]), 5)]


def test_answers_equal_the_in_process_engine(bundle, engine):
    batch = queries(engine.catalog)
    ours, theirs = engine.recommend_batch(batch), NativeDirectEngine.from_bundle(bundle).recommend_batch(batch)
    assert isinstance(ours[2], RequestInvalid) and "no-such-item" in ours[2].detail
    assert [r for i, r in enumerate(ours) if i != 2] == [r for i, r in enumerate(theirs) if i != 2]
    assert [len(ours[i]) for i in (0, 1, 3)] == [4, 2, 5]


def test_describe_names_the_bundle_and_the_child(engine):
    facts = engine.describe()
    assert facts["engine"] == "native" and facts["process"] == engine.pid != os.getpid()
    assert facts["bundle_version"] == engine.bundle_version != "unknown"
    assert facts["n_items"] == len(engine.catalog)


def test_a_dead_child_fails_its_batch_with_503_and_restarts(engine):
    os.kill(engine.pid, signal.SIGKILL)
    with pytest.raises(DependencyUnavailable, match="exited"):
        engine.recommend_batch(queries(engine.catalog))
    answers = engine.recommend_batch(queries(engine.catalog)[:1])
    assert len(answers[0]) == 4 and engine.pid is not None


def test_a_bad_bundle_fails_at_start_with_the_childs_reason(bundle):
    with pytest.raises(EngineProcessError, match="BundleError.*pins"):
        ProcessDirectEngine(bundle, expected_version="not-this-one", start_timeout_s=120)


def test_shutdown_stops_the_child_and_refuses_later_batches(bundle):
    engine = ProcessDirectEngine(bundle, start_timeout_s=120)
    proc = engine._proc
    engine.shutdown()
    assert proc.poll() is not None
    with pytest.raises(DependencyUnavailable, match="shut down"):
        engine.recommend_batch(queries(engine.catalog))


def test_engine_process_setting_builds_the_child_engine_whose_batches_do_not_wait(bundle):
    settings = ServeSettings.model_validate({
        "engine": {"process": True, "batch_wait_ms": 10}, "bundles": {"sft": str(bundle)},
        "experiments": [{"name": "e", "salt": "s", "arms": [{"name": "d", "mode": "direct", "bundle": "sft",
                                                               "weight": 1}]}]})
    engine = build_native_engine(settings, settings.experiments[0].arms[0])
    try:
        assert isinstance(engine, ProcessDirectEngine)
        assert batch_wait_ms_for(engine, 10.0) == 0.0
    finally:
        engine.shutdown()


def test_the_async_path_answers_alike_and_drops_the_answer_of_a_cancelled_call(engine):
    batch = queries(engine.catalog)

    async def cancel_one_then_ask_again():
        first = asyncio.ensure_future(engine.recommend_batch_async(batch[:1]))
        await asyncio.sleep(0)  # sent, not yet answered
        first.cancel()
        return await engine.recommend_batch_async(batch[3:])

    assert asyncio.run(cancel_one_then_ask_again()) == engine.recommend_batch(batch[3:])
    assert asyncio.run(engine.recommend_batch_async(batch[:2])) == engine.recommend_batch(batch[:2])
