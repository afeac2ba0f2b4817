"""Reasoning mode on a real Redis and a tiny Rechead bundle: cached vector, CoT, fallbacks, outage, batch vectors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from feature_store.schema import UserFeatures, decode_vector, encode_history, user_key
from feature_store.store import FeatureStore
from serving.errors import RequestInvalid
from serving.reasoning import ITEM_INDEX_DIR, ReasoningService, load_item_index
from serving.retrieval import ItemIndex
from serving.user_vectors import UserVectorStore
from tests.serving.fakes import dead_redis_url
from training.bundle import BundleError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30), pytest.mark.usefixtures("one_torch_thread")]
COT = "<think>The user likes dramas from the nineties.</think>"


@pytest.fixture
def store(redis_url):
    with FeatureStore(redis_url, namespace="t", ttl_s=3600, timeout_s=0.5, retries=0) as s:
        yield s


@pytest.fixture
def service(rechead_bundle, store, hash_encoder) -> ReasoningService:
    return ReasoningService.from_bundle(rechead_bundle, store, encoder=hash_encoder)


def put(store: FeatureStore, user: str, history: list[str], cot: str | None = None, answer: list[str] | None = None,
        updated_at: float = 100.0) -> None:
    fields = {"history": encode_history(history)}
    if cot is not None:
        fields.update(cot=cot, answer=json.dumps(answer or []))
    store.write([UserFeatures(user, updated_at, fields)])


def ids(result) -> list[str]:
    return [i.item_id for i in result.items]


def test_cot_path_writes_the_vector_back_and_the_next_call_uses_it(service, store):
    put(store, "u1", ["1", "2", "3"], COT, ["7"])
    ttl_before = store.client.ttl(user_key("t", "u1"))
    first = service.recommend_blocking("u1", None, 5)
    assert (first.path, first.fallback, first.cot_hit) == ("cot", None, True)
    assert len(ids(first)) == 5 == len(set(ids(first))) and not {"1", "2", "3"} & set(ids(first))
    assert all(i.title == service.catalog.info(i.item_id).title for i in first.items)
    row = store.read(["u1"])[0]
    inputs = service.inputs_of(("1", "2", "3"), COT, '["7"]')
    assert inputs.answer_item == "7" and row["vector_version"] == f"{service.bundle_version}:{inputs.sha()}"
    assert row["updated_at"] == "100.0" and store.client.ttl(user_key("t", "u1")) <= ttl_before
    vector = decode_vector(row["user_vector"], service.index.dim)
    np.testing.assert_allclose(vector, service.user_vectors([inputs])[0], rtol=1e-5, atol=1e-6)
    matrix = service.recommender.item_matrix
    for item in first.items:  # the score is h_u · h_v (rporec.txt Eq. 5)
        assert item.score == pytest.approx(float(vector @ matrix[service.catalog.index_of(item.item_id)]), abs=1e-4)
    second = service.recommend_blocking("u1", None, 5)
    assert second.path == "cached_vector" and ids(second) == ids(first)
    assert [i.score for i in second.items] == pytest.approx([i.score for i in first.items], abs=1e-5)
    assert set(second.timings) == {"redis", "faiss"}


def test_changed_inputs_miss_the_cached_vector(service, store):
    put(store, "u1", ["1", "2", "3"], COT, ["7"])
    service.recommend_blocking("u1", None, 5)
    assert service.recommend_blocking("u1", ["1", "2"], 5).path == "cot"  # another history than the stored one
    put(store, "u1", ["1", "2", "3", "4"], COT + " More.", ["8"], updated_at=200.0)  # nearline rewrote the row
    assert store.read(["u1"])[0]["user_vector"]  # the old vector is still there, but stale
    again = service.recommend_blocking("u1", None, 5)
    assert again.path == "cot" and "4" not in ids(again)
    assert service.recommend_blocking("u1", None, 5).path == "cached_vector"


def test_no_cot_falls_back_and_queues_the_user(service, store):
    put(store, "u1", ["1", "2", "3"])
    result = service.recommend_blocking("u1", None, 4, explain=True)
    assert (result.path, result.fallback, result.cot_hit, result.explanation) == ("history_only", "no_cached_cot",
                                                                                  False, None)
    assert len(ids(result)) == 4 and not {"1", "2", "3"} & set(ids(result))
    assert UserVectorStore(store).queued() == {"u1"}
    direct = service.recommend_blocking("u1", None, 4, fallback="direct")
    assert (direct.path, direct.fallback, direct.items, direct.history) == ("direct", "no_cached_cot", [],
                                                                            ("1", "2", "3"))
    stranger = service.recommend_blocking("stranger", ["4"], 3)  # Redis has no row: answered, not queued
    assert stranger.path == "history_only" and UserVectorStore(store).queued() == {"u1"}


def test_history_only_matches_the_featurizers_cot_none_inputs(service):
    from training.data.types import Sample

    sample = Sample("s", "u", ("1", "2"), "")
    service.featurizer.cot = "none"
    try:
        expected = service.recommender.user_vectors([sample])[0]
    finally:
        service.featurizer.cot = "programmatic"
    np.testing.assert_allclose(service.user_vectors([service.inputs_of(("1", "2"))])[0], expected, atol=1e-6)


def test_redis_down_answers_from_the_request_history(rechead_bundle, hash_encoder):
    with FeatureStore(dead_redis_url(), namespace="t", timeout_s=0.2, retries=0) as dead:
        service = ReasoningService.from_bundle(rechead_bundle, dead, encoder=hash_encoder)
        result = service.recommend_blocking("u1", ["1", "2"], 3)
        assert (result.path, result.fallback, result.cot_hit) == ("history_only", "redis_unavailable", None)
        assert len(ids(result)) == 3
        cold = service.recommend_blocking("u1", None, 3)
        assert (cold.path, cold.fallback, cold.items) == ("cold_start", "redis_unavailable", [])


def test_cold_start_unknown_items_and_stored_unknowns(service, store):
    cold = service.recommend_blocking("nobody", None, 3)
    assert (cold.path, cold.fallback) == ("cold_start", "cold_start")
    assert service.recommend_blocking("nobody", [], 3).path == "cold_start"
    with pytest.raises(RequestInvalid, match="2 unknown item id\\(s\\) in the history: 'x', 'y'"):
        service.recommend_blocking("u1", ["1", "x", "y"], 3)
    put(store, "u2", ["1", "gone", "2"])  # a stored history may name items newer than the bundle: dropped
    assert service.recommend_blocking("u2", None, 3).history == ("1", "2")


def test_all_items_distinct_and_exclude_seen_off(service):
    everything = service.recommend_blocking("x", ["1", "2"], 50)
    assert sorted(ids(everything), key=int) == [str(i) for i in range(3, 13)]
    with_seen = service.recommend_blocking("x", ["1", "2"], 50, exclude_seen=False)
    assert len(ids(with_seen)) == 12 == len(set(ids(with_seen)))


def test_explain_returns_the_cached_cot(service, store):
    put(store, "u1", ["1"], COT, ["bogus", "9"])
    result = service.recommend_blocking("u1", None, 2, explain=True)
    assert result.explanation == COT and service.inputs_of(("1",), COT, '["bogus", "9"]').answer_item == "9"


def test_compute_user_vectors_in_batch(service, store):
    for user in ("a", "b", "c"):
        put(store, user, ["1", "2"], f"{COT} {user}", ["5"])
    put(store, "d", ["3"])
    assert service.compute_user_vectors(store, ["a", "b", "c", "d", "missing"], batch_size=2) == 3
    assert service.compute_user_vectors(store, ["a", "b", "c", "d"]) == 0  # already current
    assert service.recommend_blocking("b", None, 3).path == "cached_vector"


def test_saved_index_and_version_pin(service, rechead_bundle, tmp_path, hash_encoder):
    saved = ItemIndex.build(service.catalog.item_ids, service.recommender.item_matrix)
    saved.save(tmp_path / ITEM_INDEX_DIR)
    loaded = load_item_index(tmp_path, service.recommender)
    assert loaded.item_ids == service.catalog.item_ids
    with pytest.raises(BundleError, match="pins 'deadbeef'"):
        ReasoningService.from_bundle(rechead_bundle, None, encoder=hash_encoder, expected_version="deadbeef")
    assert service.describe()["n_items"] == 12 and service.describe()["index_kind"] == "flat"
