"""Bodies over max_body_bytes are 413 with a reason, declared or streamed; bodies under it pass untouched."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from serving.body_limit import BodySizeLimit, declared_length

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def client():
    app = FastAPI()
    app.add_middleware(BodySizeLimit, max_bytes=1024)

    @app.post("/echo")
    async def echo(request: Request) -> dict:
        return {"bytes": len(await request.body())}

    with TestClient(app) as client:
        yield client


def test_a_declared_length_over_the_limit_is_413(client):
    response = client.post("/echo", content=b"x" * 2000)
    assert response.status_code == 413 and response.json() == {"detail": "request body larger than 1024 bytes"}


def test_a_streamed_body_is_counted_as_it_arrives(client):
    chunks = (b"y" * 300 for _ in range(5))  # no Content-Length: chunked, 1500 bytes
    response = client.post("/echo", content=chunks)
    assert response.status_code == 413 and "1024 bytes" in response.json()["detail"]
    assert client.post("/echo", content=(b"y" * 300 for _ in range(3))).json() == {"bytes": 900}


def test_bodies_under_the_limit_pass(client):
    assert client.post("/echo", content=b"x" * 1024).json() == {"bytes": 1024}
    assert client.get("/docs").status_code == 200


def test_declared_length_parsing():
    assert declared_length({"headers": [(b"content-length", b"12")]}) == 12
    assert declared_length({"headers": [(b"content-length", b"twelve")]}) is None
    assert declared_length({"headers": []}) is None


@pytest.mark.integration
def test_the_app_refuses_a_huge_recommend_body(redis_url, tmp_path, rechead_bundle, hash_encoder):
    from serving.app import build_app
    from tests.serving.fakes import make_pipeline, make_service, make_settings, make_store

    settings = make_settings(redis_url, tmp_path, max_body_bytes=4096)
    with make_store(settings) as store:
        pipeline = make_pipeline(settings, store, make_service(rechead_bundle, store, hash_encoder))
        with TestClient(build_app(pipeline)) as app:
            body = json.dumps({"user_id": "u", "history": ["1"] * 2000})
            response = app.post("/v1/recommend", content=body, headers={"content-type": "application/json"})
            assert response.status_code == 413
            metrics = app.get("/metrics").text
            assert 'status="413"' in metrics
        pipeline.close()
