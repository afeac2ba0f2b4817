"""The HTTP app in process (FastAPI TestClient) on a real Redis, a tiny Rechead and a fake direct engine.

TestClient re-raises any exception that would end in a 500, so every test here also asserts that no error
path is a bug."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from feature_store.schema import UserFeatures, encode_history
from serving.app import build_app
from serving.experiments import FORCE_ARM_HEADER
from serving.user_vectors import UserVectorStore
from tests.serving.fakes import (
    FakeEngine,
    dead_redis_url,
    make_pipeline,
    make_service,
    make_settings,
    make_store,
    user_in_arm,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30), pytest.mark.usefixtures("one_torch_thread")]
COT = "<think>Two comedies in a row.</think>"



def serve(settings, store, rechead_bundle, hash_encoder, **options):
    pipeline = make_pipeline(settings, store, make_service(rechead_bundle, store, hash_encoder), **options)
    return pipeline, TestClient(build_app(pipeline))


@pytest.fixture
def client(settings, store, rechead_bundle, hash_encoder):
    pipeline, client = serve(settings, store, rechead_bundle, hash_encoder)
    with client:
        client.pipeline = pipeline
        yield client
    pipeline.close()


def recommend(client, body: dict, arm: str | None = None):
    return client.post("/v1/recommend", json=body, headers={FORCE_ARM_HEADER: arm} if arm else {})


def put(store, user: str, history: list[str], cot: str | None = None) -> None:
    fields = {"history": encode_history(history)}
    if cot:
        fields.update(cot=cot, answer=json.dumps(["6"]))
    store.write([UserFeatures(user, 1.0, fields)])


def test_both_modes_over_http(client):
    direct = recommend(client, {"user_id": user_in_arm(client.pipeline, "direct"), "history": ["1", "2"], "k": 3})
    assert direct.status_code == 200
    body = direct.json()
    assert (body["mode_used"], body["arm"], body["path"], body["model_version"]) == ("direct", "direct",
                                                                                     "beam_search", "policy-v1")
    assert [i["item_id"] for i in body["items"]] == ["12", "11", "10"] and body["items"][0]["title"] == "Film 12"
    assert len(body["request_id"]) == 32 and body["latency_ms"] >= 0
    reasoning = recommend(client, {"user_id": "anyone", "history": ["1", "2"], "k": 4}, arm="reasoning").json()
    assert (reasoning["mode_used"], reasoning["arm"]) == ("reasoning", "reasoning")
    assert len({i["item_id"] for i in reasoning["items"]}) == 4
    assert not {"1", "2"} & {i["item_id"] for i in reasoning["items"]}


def test_cached_vector_cot_and_no_cot_paths(client, store):
    put(store, "with_cot", ["1", "2", "3"], COT)
    put(store, "no_cot", ["4", "5"])
    first = recommend(client, {"user_id": "with_cot", "explain": True}, arm="reasoning").json()
    second = recommend(client, {"user_id": "with_cot"}, arm="reasoning").json()
    plain = recommend(client, {"user_id": "no_cot"}, arm="reasoning").json()
    assert (first["path"], first["fallback"], first["explanation"]) == ("cot", None, COT)
    assert (second["path"], second["fallback"], second["explanation"]) == ("cached_vector", None, None)
    assert [i["item_id"] for i in first["items"]] == [i["item_id"] for i in second["items"]]
    assert (plain["path"], plain["fallback"], plain["mode_used"]) == ("history_only", "no_cached_cot", "reasoning")
    assert UserVectorStore(store).queued() == {"no_cot"}


def test_redis_down_falls_back_and_readyz_says_so(tmp_path, rechead_bundle, hash_encoder):
    settings = make_settings(dead_redis_url(), tmp_path)
    with make_store(settings) as dead:
        pipeline, client = serve(settings, dead, rechead_bundle, hash_encoder)
        with client:
            answer = recommend(client, {"user_id": "u1", "history": ["1", "2"]}, arm="reasoning")
            assert answer.status_code == 200
            assert (answer.json()["fallback"], answer.json()["path"]) == ("redis_unavailable", "history_only")
            cold = recommend(client, {"user_id": "u1"}, arm="reasoning")
            assert cold.status_code == 200 and cold.json()["fallback"] == "redis_unavailable"
            ready = client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["ready"] is False
            assert "redis unreachable" in ready.json()["detail"]
            assert client.get("/healthz").json() == {"status": "ok"}
        pipeline.close()


@pytest.mark.parametrize(("body", "content_type", "fragment"), [
    ('{"user_id": "u1", "k": ', "application/json", "JSON decode error"),
    ("not json at all", "application/json", "JSON decode error"),
    ('{"user_id": "u1", "k": "3"}', "application/json", "body.k: Input should be a valid integer"),
    ('{"user_id": "u1", "k": 0}', "application/json", "body.k: Input should be greater than or equal to 1"),
    ('{"user_id": "u1", "history": "1,2"}', "application/json", "body.history: Input should be a valid list"),
    ('{"user_id": "u1", "history": [1, 2]}', "application/json", "body.history.0: Input should be a valid string"),
    ('{"user_id": "u1", "mode": "fast"}', "application/json", "body.mode: Input should be 'direct', 'reasoning'"),
    ('{"user_id": "  "}', "application/json", "body.user_id: Value error, must not be blank"),
    ('{"user_id": "u1", "exclude_sen": true}', "application/json", "body.exclude_sen: Extra inputs are not"),
    ('{"history": ["1"]}', "application/json", "body.user_id: Field required"),
    ("[]", "application/json", "body: Input should be a valid dictionary"),
    ("", "application/json", "body: Field required"),
    ('{"user_id": "u1"}', "text/plain", "body"),
])
def test_bad_requests_are_422_with_a_one_line_reason(client, body, content_type, fragment):
    response = client.post("/v1/recommend", content=body, headers={"content-type": content_type})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and fragment in detail


def test_request_level_refusals(client, settings, store, rechead_bundle, hash_encoder):
    too_many = recommend(client, {"user_id": "u1", "history": ["1"], "k": 11})
    assert too_many.status_code == 422 and too_many.json()["detail"] == "k must be ≤ 10, got 11"
    unknown = recommend(client, {"user_id": "u1", "history": ["1", "nope", "zz"]}, arm="direct")
    assert unknown.status_code == 422 and "'nope', 'zz'" in unknown.json()["detail"]
    arm = recommend(client, {"user_id": "u1", "history": ["1"]}, arm="blue")
    assert arm.status_code == 422 and "unknown arm 'blue'" in arm.json()["detail"]
    assert "['direct', 'reasoning']" in arm.json()["detail"]
    mode = recommend(client, {"user_id": "u1", "history": ["1"], "mode": "reasoning"}, arm="direct")
    assert mode.status_code == 422 and "has no reasoning model" in mode.json()["detail"]


def test_cold_start_popularity_or_404(client, settings, store, rechead_bundle, hash_encoder):
    for arm in ("direct", "reasoning"):
        for body in ({"user_id": "ghost"}, {"user_id": "ghost", "history": []}):
            cold = recommend(client, {**body, "k": 2}, arm=arm)
            assert cold.status_code == 200
            assert (cold.json()["mode_used"], cold.json()["fallback"]) == ("popularity", "cold_start")
            assert [i["item_id"] for i in cold.json()["items"]][0] == "5"
    strict = settings.model_copy(update={"cold_start": "404"})
    pipeline, strict_client = serve(strict, store, rechead_bundle, hash_encoder)
    with strict_client:
        for arm in ("direct", "reasoning"):
            missing = recommend(strict_client, {"user_id": "ghost"}, arm=arm)
            assert missing.status_code == 404 and "no history for this user" in missing.json()["detail"]
    pipeline.close()


def test_a_slow_engine_is_503_with_retry_after(settings, store, rechead_bundle, hash_encoder):
    slow = settings.model_copy(update={"request_timeout_s": 0.3})
    pipeline, client = serve(slow, store, rechead_bundle, hash_encoder, engine=FakeEngine(delay_s=1.0), warm=False)
    with client:
        response = recommend(client, {"user_id": "u1", "history": ["1"]}, arm="direct")
        assert response.status_code == 503 and response.headers["Retry-After"] == "1"
        assert "did not answer within" in response.json()["detail"]
    pipeline.close()


def test_feedback_is_durable_and_idempotent(client, settings):
    event = {"user_id": "u1", "item_id": "3", "event": "click", "request_id": "r1"}
    first = client.post("/v1/feedback", json=event)
    assert first.status_code == 200 and first.json() == {"accepted": 1, "duplicates": 0}
    assert client.post("/v1/feedback", json=event).json() == {"accepted": 0, "duplicates": 1}
    batch = [{**event, "event": "exposure"}, {"user_id": "u2", "item_id": "4", "event": "exposure", "arm": "direct",
                                              "ts": 5.0}]
    assert client.post("/v1/feedback", json=batch).json() == {"accepted": 2, "duplicates": 0}
    rows = [json.loads(line) for line in open(settings.feedback_log)]
    assert [(r["user_id"], r["item_id"], r["event"], r["request_id"]) for r in rows] == [
        ("u1", "3", "click", "r1"), ("u1", "3", "exposure", "r1"), ("u2", "4", "exposure", None)]
    assert rows[0]["arm"] == client.pipeline.experiment.assign("u1") and rows[2]["arm"] == "direct"
    assert rows[2]["ts"] == 5.0 and rows[0]["ts"] == rows[0]["received_at"]
    for bad in ({**event, "event": "purchase"}, [], {**event, "colour": 1}):
        response = client.post("/v1/feedback", json=bad)
        assert response.status_code == 422 and isinstance(response.json()["detail"], str)


def test_models_health_ready_docs(client):
    models = client.get("/v1/models").json()["models"]
    assert [(m["arm"], m["mode"], m["ready"], m["experiment"]) for m in models] == [
        ("direct", "direct", True, "mode_ab"), ("reasoning", "reasoning", True, "mode_ab")]
    assert models[0]["bundle_version"] == "policy-v1" and models[1]["details"]["kind"] == "rechead"
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"ready": True, "reasons": []}
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/recommend", "/v1/feedback", "/v1/models", "/healthz", "/readyz", "/metrics"} <= set(paths)


def test_metrics_have_arm_labels_and_no_user_ids(client, store):
    put(store, "secret-user-42", ["1", "2"], COT)
    recommend(client, {"user_id": "secret-user-42"}, arm="reasoning")
    recommend(client, {"user_id": "secret-user-43", "history": ["1"]}, arm="direct")
    recommend(client, {"user_id": "secret-user-44", "k": "x"})
    client.post("/v1/feedback", json={"user_id": "secret-user-42", "item_id": "3", "event": "click",
                                      "request_id": "req-secret"})
    client.get("/nowhere")
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'reasonrec_requests_total{arm="reasoning",endpoint="/v1/recommend",mode="reasoning",status="200"} 1.0' \
        in text
    assert 'arm="direct",endpoint="/v1/recommend",mode="direct",status="200"' in text
    assert 'arm="none",endpoint="/v1/recommend",mode="none",status="422"' in text
    assert 'endpoint="/v1/recommend",mode="none",status="200"' not in text  # counted once, by the pipeline
    assert 'reasonrec_requests_total{arm="none",endpoint="/v1/feedback",mode="none",status="200"} 1.0' in text
    assert 'endpoint="other"' in text and 'reasonrec_feedback_events_total{arm=' in text
    assert 'reasonrec_cot_cache_lookups_total{result="hit"} 1.0' in text
    assert 'dependency="redis"' in text and 'dependency="faiss"' in text and 'dependency="engine"' in text
    assert "secret-user" not in text and "req-secret" not in text


class BrokenEngine(FakeEngine):
    def recommend_batch(self, queries):
        raise RuntimeError("a bug")


def test_an_unexpected_error_is_a_500_with_a_one_line_detail(settings, store, rechead_bundle, hash_encoder):
    pipeline = make_pipeline(settings, store, make_service(rechead_bundle, store, hash_encoder),
                             engine=BrokenEngine(), warm=False)
    with TestClient(build_app(pipeline), raise_server_exceptions=False) as client:
        response = recommend(client, {"user_id": "u1", "history": ["1"]}, arm="direct")
        assert response.status_code == 500 and response.json() == {"detail": "internal error (RuntimeError)"}
        assert 'arm="direct",endpoint="/v1/recommend",mode="direct",status="500"' in client.get("/metrics").text
    pipeline.close()
