"""Settings -> pipeline: real bundles (native beam search + Rechead), engine factories, load failures, readiness."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from serving import loading
from serving.app import ENGINE_FACTORIES, build_app, build_pipeline_from_settings
from serving.experiments import FORCE_ARM_HEADER
from serving.feedback import RedisFeedbackLog
from tests.serving.fakes import FakeEngine, make_settings
from training.config import ConfigError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60), pytest.mark.usefixtures("one_torch_thread")]


def settings_for(redis_url, tmp_path, sft, rechead, engine: str = "native", **overrides):
    settings = make_settings(redis_url, tmp_path, **overrides)
    bundles = {"sft": str(sft), "rechead": str(rechead)}
    arms = [a.model_copy(update={"engine": engine}) if a.mode == "direct" else a
            for a in settings.experiments[0].arms]
    experiment = settings.experiments[0].model_copy(update={"arms": arms})
    return settings.model_copy(update={"bundles": bundles, "experiments": [experiment]})


@pytest.fixture
def fake_vllm(monkeypatch):
    """A "vllm" factory that builds the fake engine (what the lead registers for the real one)."""
    monkeypatch.setitem(ENGINE_FACTORIES, "vllm", lambda settings, arm: FakeEngine())


@pytest.mark.slow  # the policy bundle imports transformers (~10 s on 2 cores)
def test_native_and_rechead_bundles_over_http(redis_url, tmp_path, policy_bundle, rechead_bundle, hash_encoder):
    settings = settings_for(redis_url, tmp_path, policy_bundle, rechead_bundle, reasoning_fallback="direct")
    pipeline = build_pipeline_from_settings(settings, encoder=hash_encoder)
    with TestClient(build_app(pipeline)) as client:
        assert client.get("/readyz").json() == {"ready": True, "reasons": []}
        for arm in ("direct", "reasoning"):
            response = client.post("/v1/recommend", json={"user_id": "u1", "history": ["1", "2", "3"], "k": 4},
                                   headers={FORCE_ARM_HEADER: arm})
            assert response.status_code == 200, response.text
            body = response.json()
            ids = [i["item_id"] for i in body["items"]]
            assert len(ids) == 4 == len(set(ids)) and not {"1", "2", "3"} & set(ids)
        direct = client.post("/v1/recommend", json={"user_id": "u1", "history": ["1", "2"], "k": 3},
                             headers={FORCE_ARM_HEADER: "direct"}).json()
        assert direct["path"] == "beam_search" and all(i["score"] <= 0 for i in direct["items"])  # log P
        fallback = client.post("/v1/recommend", json={"user_id": "nobody", "history": ["4"]},
                               headers={FORCE_ARM_HEADER: "reasoning"}).json()
        assert (fallback["mode_used"], fallback["fallback"]) == ("direct", "no_cached_cot")
        models = {m["arm"]: m for m in client.get("/v1/models").json()["models"]}
        assert models["direct"]["details"]["engine"] == "native" and models["reasoning"]["details"]["direct_fallback"]
        assert models["direct"]["bundle_version"] == direct["model_version"]
    pipeline.close()


def test_a_vllm_arm_needs_a_registered_factory(redis_url, tmp_path, rechead_bundle, hash_encoder, monkeypatch):
    settings = settings_for(redis_url, tmp_path, tmp_path / "sft", rechead_bundle, engine="vllm")
    assert "vllm" in ENGINE_FACTORIES  # registered by serving.loading
    monkeypatch.delitem(ENGINE_FACTORIES, "vllm")
    with pytest.raises(ConfigError, match="engine 'vllm', but no factory is registered"):
        build_pipeline_from_settings(settings, encoder=hash_encoder)


def test_registered_factory_and_a_bundle_that_fails_to_load(redis_url, tmp_path, rechead_bundle, hash_encoder,
                                                           fake_vllm):
    settings = settings_for(redis_url, tmp_path, tmp_path / "sft", tmp_path / "missing", engine="vllm",
                            feedback_log="redis")
    pipeline = build_pipeline_from_settings(settings, encoder=hash_encoder)
    assert isinstance(pipeline.engines["direct"], FakeEngine) and "reasoning" in pipeline.load_errors
    assert isinstance(pipeline.feedback_log, RedisFeedbackLog) and "direct" in pipeline.popularity
    with TestClient(build_app(pipeline)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["reasons"] == [f"arm 'reasoning': bundle 'rechead' not loaded "
                                           f"({pipeline.load_errors['reasoning']})"]
        down = client.post("/v1/recommend", json={"user_id": "u1", "history": ["1"]},
                           headers={FORCE_ARM_HEADER: "reasoning"})
        assert down.status_code == 503 and "bundle 'rechead' not loaded" in down.json()["detail"]
        assert down.headers["Retry-After"] == "1"
        assert client.post("/v1/recommend", json={"user_id": "u1", "history": ["1"]},
                           headers={FORCE_ARM_HEADER: "direct"}).status_code == 200
        models = {m["arm"]: m for m in client.get("/v1/models").json()["models"]}
        assert models["reasoning"]["ready"] is False and "error" in models["reasoning"]["details"]
    pipeline.close()


def test_a_pinned_version_that_differs_is_a_load_error(redis_url, tmp_path, rechead_bundle, hash_encoder, fake_vllm):
    settings = settings_for(redis_url, tmp_path, tmp_path / "sft", rechead_bundle, engine="vllm")
    arms = [a.model_copy(update={"bundle_version": "deadbeef"}) if a.mode == "reasoning" else a
            for a in settings.experiments[0].arms]
    pinned = settings.model_copy(update={"experiments": [settings.experiments[0].model_copy(update={"arms": arms})]})
    pipeline = build_pipeline_from_settings(pinned, encoder=hash_encoder, warm=False)
    assert "pins 'deadbeef'" in pipeline.load_errors["reasoning"]
    assert loading.build_store(pinned).namespace == "t"
    pipeline.close()


class ShutdownCounter:
    """Wraps the real native factory; counts engines built and shut down."""

    def __init__(self):
        self.built, self.shut = [], []

    def __call__(self, settings, arm):
        engine = loading.build_native_engine(settings, arm)
        engine.shutdown = lambda engine=engine: self.shut.append(engine)
        self.built.append(engine)
        return engine


@pytest.mark.slow
def test_a_reload_keeps_unchanged_engines_and_reloads_changed_ones(redis_url, tmp_path, policy_bundle,
                                                                   rechead_bundle, hash_encoder, monkeypatch):
    import shutil

    counter = ShutdownCounter()
    monkeypatch.setitem(ENGINE_FACTORIES, "native", counter)
    settings = settings_for(redis_url, tmp_path, policy_bundle, rechead_bundle)
    first = build_pipeline_from_settings(settings, encoder=hash_encoder, warm=False)
    same = build_pipeline_from_settings(settings, encoder=hash_encoder, warm=False, reuse=first)
    assert same.engines["direct"] is first.engines["direct"] and len(counter.built) == 1
    first.close(keep=same.loaded_models())
    assert counter.shut == []  # the engine now serving in `same` is left running

    copy = tmp_path / "sft_copy"
    shutil.copytree(policy_bundle, copy)
    moved = build_pipeline_from_settings(settings_for(redis_url, tmp_path, copy, rechead_bundle),
                                         encoder=hash_encoder, warm=False, reuse=same)
    assert moved.engines["direct"] is not same.engines["direct"] and len(counter.built) == 2  # another path

    other_beam = settings.model_copy(update={"engine": settings.engine.model_copy(update={"beam_width": 3})})
    rebuilt = build_pipeline_from_settings(other_beam, encoder=hash_encoder, warm=False, reuse=same)
    assert rebuilt.engines["direct"] is not same.engines["direct"]  # other engine settings
    (copy / "catalog.json").write_text((copy / "catalog.json").read_text() + " ")
    altered = build_pipeline_from_settings(settings_for(redis_url, tmp_path, copy, rechead_bundle),
                                           encoder=hash_encoder, warm=False, reuse=moved)
    assert "direct" not in altered.engines and "changed" in altered.load_errors["direct"]  # not reused, refused
    for pipeline in (same, moved, rebuilt, altered):
        pipeline.close()
    assert len(counter.shut) == 3
