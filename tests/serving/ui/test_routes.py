"""The /ui routes in process (TestClient) over a real Redis, the tiny Rechead and the fake direct engine."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from feature_store.schema import UserFeatures, encode_history
from serving.app import build_app
from serving.experiments import FORCE_ARM_HEADER
from tests.conftest import make_tiny_dataset
from tests.serving.fakes import make_pipeline, make_service, make_settings, make_store
from training.data.split import build_split
from training.data.store import write_split

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30), pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture
def client(redis_url, tmp_path, rechead_bundle, hash_encoder):
    split_dir = tmp_path / "split"
    write_split(build_split(make_tiny_dataset()), split_dir)
    settings = make_settings(redis_url, tmp_path, ui={"split_dir": str(split_dir), "max_users": 4})
    with make_store(settings) as store:
        store.write([UserFeatures("1", 1.0, {"history": encode_history(["1", "2", "3"])})])
        pipeline = make_pipeline(settings, store, make_service(rechead_bundle, store, hash_encoder))
        with TestClient(build_app(pipeline)) as client:
            yield client
        pipeline.close()


def test_page_and_static_files_are_served(client):
    page = client.get("/ui")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/ui/static/app.js">' in page.text
    assert client.get("/ui/static/app.js").status_code == 200
    assert client.get("/ui/static/nope.js").status_code == 404


def test_config_names_a_column_arm_per_mode_and_the_stage_labels(client):
    body = client.get("/ui/api/config").json()
    assert body["columns"] == {"direct": "direct", "reasoning": "reasoning"}
    assert [a["name"] for a in body["arms"]] == ["direct", "reasoning"]
    assert len(body["stage_labels"]) == 5 and body["split"] is True


def test_users_and_a_user_view(client):
    assert client.get("/ui/api/users").json() == {"users": ["1", "2", "3", "4"], "source": "split"}
    user = client.get("/ui/api/users/1").json()
    assert [i["item_id"] for i in user["history"]] == ["1", "2", "3"]
    assert user["history_source"] == "redis" and user["later"] and user["arm"] in ("direct", "reasoning")
    missing = client.get("/ui/api/users/nobody")
    assert missing.status_code == 404 and "no history" in missing.json()["detail"]
    assert client.get(f"/ui/api/users/{'x' * 200}").status_code == 422


def test_arm_panel_counts_recommend_calls_and_feedback(client):
    for arm in ("direct", "direct", "reasoning"):
        assert client.post("/v1/recommend", json={"user_id": "1", "k": 3},
                           headers={FORCE_ARM_HEADER: arm}).status_code == 200
    client.post("/v1/feedback", json=[{"user_id": "1", "item_id": "5", "event": e, "arm": "direct"}
                                      for e in ("exposure", "exposure", "click")])
    panels = {p["arm"]: p for p in client.get("/ui/api/arms").json()["arms"]}
    assert (panels["direct"]["requests"], panels["reasoning"]["requests"]) == (2, 1)
    assert (panels["direct"]["exposures"], panels["direct"]["clicks"], panels["direct"]["ctr"]) == (2, 1, 0.5)
    assert panels["direct"]["p50_ms"] > 0 and panels["reasoning"]["ctr"] is None


def test_the_page_can_be_switched_off(redis_url, tmp_path, rechead_bundle, hash_encoder):
    settings = make_settings(redis_url, tmp_path, ui={"enabled": False})
    with make_store(settings) as store:
        pipeline = make_pipeline(settings, store, make_service(rechead_bundle, store, hash_encoder))
        with TestClient(build_app(pipeline)) as client:
            assert client.get("/ui").status_code == 404
        pipeline.close()
