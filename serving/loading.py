"""Settings -> a loaded `RecommendPipeline`: bundles, engines, Rechead services, store, feedback log, popularity.

Direct-mode engines come from `ENGINE_FACTORIES[arm.engine](settings, arm)`: "native" (in-process beam search) is
registered here; "vllm" is registered by whoever provides the vLLM engine (`ENGINE_FACTORIES["vllm"] = ...`);
an arm naming an engine without a factory is a configuration error raised at once.

A bundle that fails to load (missing, altered, pinned to another version) does not stop the server: the arm is
recorded in `load_errors`, answers 503 with the reason, and /readyz lists it. Arms naming the same bundle with the
same engine share one loaded model (and one micro-batcher). A reload (`reuse=` the serving pipeline) keeps the
direct engines whose engine kind, bundle path, engine settings and bundle files (content hash) are unchanged, so an
unchanged vLLM engine is not started twice; reasoning services are always rebuilt (they hold the store). A reasoning
arm gets the engine of the experiment's first direct arm when `reasoning_fallback` is "direct" (its direct
fallback); with none, it falls back to history-only. Only the active (first) experiment is loaded."""

from __future__ import annotations

import logging
from collections.abc import Callable

from feature_store.store import FeatureStore
from serving.engine import DirectEngine
from serving.feedback import build_feedback_log
from serving.metrics import ServingMetrics
from serving.pipeline import RecommendPipeline, version_of
from serving.popularity import Popularity
from serving.reasoning import ReasoningService
from serving.settings import ArmSettings, ServeSettings
from training.config import ConfigError
from training.models.text_encoder import TextEncoder

EngineFactory = Callable[[ServeSettings, ArmSettings], DirectEngine]
log = logging.getLogger(__name__)


def build_native_engine(settings: ServeSettings, arm: ArmSettings) -> DirectEngine:
    """The trie beam search on the arm's policy bundle: in this process, or in a child (`engine.process`)."""
    if settings.engine.process:
        from serving.engine.process import ProcessDirectEngine as Engine
    else:
        from serving.engine.native import NativeDirectEngine as Engine

    return Engine.from_bundle(settings.bundle_path(arm.bundle), device=settings.engine.device,
                              beam_width=settings.engine.beam_width, expected_version=arm.bundle_version)


def build_vllm_engine(settings: ServeSettings, arm: ArmSettings) -> DirectEngine:
    """vLLM (AsyncLLM) with the level-by-level trie beam on the arm's policy bundle (exact item scores)."""
    from serving.engine.vllm_engine import VLLMDirectEngine

    return VLLMDirectEngine.from_bundle(settings.bundle_path(arm.bundle), beam_width=settings.engine.beam_width,
                                        expected_version=arm.bundle_version, device=settings.engine.device)


ENGINE_FACTORIES: dict[str, EngineFactory] = {"native": build_native_engine, "vllm": build_vllm_engine}


def engine_factory(arm: ArmSettings) -> EngineFactory:
    """The factory of the arm's engine; ConfigError naming the missing registration."""
    factory = ENGINE_FACTORIES.get(arm.engine)
    if factory is None:
        raise ConfigError(f"arm {arm.name!r} uses engine {arm.engine!r}, but no factory is registered for it "
                          f"(registered: {sorted(ENGINE_FACTORIES)}); set serving.loading.ENGINE_FACTORIES"
                          f"[{arm.engine!r}] before building the pipeline")
    return factory


def build_store(settings: ServeSettings) -> FeatureStore:
    """The feature store of the request path: short timeouts, few retries (a fallback answers after that)."""
    return FeatureStore(settings.redis_url, settings.namespace, timeout_s=settings.redis_timeout_s,
                        retries=settings.redis_retries)


def build_pipeline_from_settings(settings: ServeSettings, encoder: TextEncoder | None = None,
                                 warm: bool = True, reuse: RecommendPipeline | None = None,
                                 direct_factory: EngineFactory | None = None) -> RecommendPipeline:
    """Load every arm of the active experiment and assemble the pipeline (warmed unless warm=False).

    encoder: the Rechead's text encoder (default: MiniLM); tests pass a fake. reuse: the pipeline being replaced
    (a reload): its unchanged direct engines are taken over instead of loaded again (close it with
    `keep=new.loaded_models()`). direct_factory: builds every direct arm's engine instead of ENGINE_FACTORIES (the
    Ray shell's engine deployment: `serving.engine.remote.RemoteDirectEngine`)."""
    experiment = settings.experiments[0]
    for arm in experiment.arms:
        if arm.mode == "direct" and direct_factory is None:
            engine_factory(arm)
    store = build_store(settings)
    engines, services, errors = _load_arms(settings, experiment.arms, store, encoder, reusable_engines(reuse, settings),
                                           direct_factory)
    _share_direct_fallback(settings, experiment.arms, engines)
    popularity = _popularity(settings, experiment.arms, engines, services)
    metrics = ServingMetrics([a.name for e in settings.experiments for a in e.arms], settings.namespace)
    pipeline = RecommendPipeline(settings, engines, services, store, metrics,
                                 build_feedback_log(settings.feedback_log, store), popularity, errors)
    if warm:
        pipeline.warm()
    return pipeline


def reusable_engines(old: RecommendPipeline | None, settings: ServeSettings) -> dict[tuple[str, str], DirectEngine]:
    """(engine kind, resolved bundle path) -> a direct engine of `old` that `settings` may take over: same engine
    settings; whether its bundle files are unchanged is checked when the arm is loaded (`_reused_engine`)."""
    if old is None or old.settings.engine != settings.engine:
        return {}
    return {(arm.engine, str(old.settings.bundle_path(arm.bundle).resolve())): old.engines[arm.name]
            for arm in old.experiment.arms if arm.mode == "direct" and arm.name in old.engines}


def _reused_engine(settings: ServeSettings, arm: ArmSettings, reusable: dict) -> DirectEngine | None:
    """The old engine for this direct arm when the bundle's manifest reads and its version and the files' content
    hash both still equal the engine's version (anything else: None, and the arm loads or fails as usual)."""
    from training.bundle import BundleError, compute_bundle_version, read_manifest

    path = settings.bundle_path(arm.bundle)
    engine = reusable.get((arm.engine, str(path.resolve()))) if arm.mode == "direct" else None
    if engine is None or not path.is_dir():
        return None
    try:
        recorded = read_manifest(path).get("bundle_version")
    except (BundleError, OSError, ValueError):
        return None
    version = compute_bundle_version(path)
    if not version == recorded == version_of(engine) or arm.bundle_version not in (None, version):
        return None
    log.info("arm %s: bundle %s unchanged (%s), engine kept", arm.name, arm.bundle, version)
    return engine


def _load_arms(settings: ServeSettings, arms: list[ArmSettings], store: FeatureStore,
               encoder: TextEncoder | None, reusable: dict | None = None,
               direct_factory: EngineFactory | None = None) -> tuple[dict, dict, dict]:
    """(engines, services, load errors) by arm name; arms with the same model share it."""
    engines, services, errors, loaded = {}, {}, {}, {}
    for arm in arms:
        key = (arm.mode, arm.engine, arm.bundle, arm.bundle_version)
        try:
            if key not in loaded:
                loaded[key] = _reused_engine(settings, arm, reusable or {}) or _load_model(settings, arm, store,
                                                                                            encoder, direct_factory)
        except Exception as err:  # noqa: BLE001 - any load failure: the arm answers 503, /readyz says why
            log.exception("arm %s: bundle %s failed to load", arm.name, arm.bundle)
            errors[arm.name] = f"{type(err).__name__}: {err}"
            continue
        (engines if arm.mode == "direct" else services)[arm.name] = loaded[key]
    return engines, services, errors


def _load_model(settings: ServeSettings, arm: ArmSettings, store: FeatureStore,
                encoder: TextEncoder | None, direct_factory: EngineFactory | None = None
                ) -> DirectEngine | ReasoningService:
    if arm.mode == "direct":
        return (direct_factory or engine_factory(arm))(settings, arm)
    from training.devices import resolve_device

    return ReasoningService.from_bundle(settings.bundle_path(arm.bundle), store,
                                        device=resolve_device(settings.engine.device),
                                        expected_version=arm.bundle_version, fallback=settings.reasoning_fallback,
                                        encoder=encoder)


def _share_direct_fallback(settings: ServeSettings, arms: list[ArmSettings], engines: dict) -> None:
    """Reasoning arms get the first direct arm's engine when the reasoning fallback is "direct"."""
    donor = next((engines[a.name] for a in arms if a.mode == "direct" and a.name in engines), None)
    if settings.reasoning_fallback != "direct" or donor is None:
        return
    for arm in arms:
        if arm.mode == "reasoning":
            engines[arm.name] = donor


def _popularity(settings: ServeSettings, arms: list[ArmSettings], engines: dict,
                services: dict) -> dict[str, Popularity]:
    """Per loaded arm: popularity over its own model's catalog, counts from any configured Pop bundle."""
    bundle_dirs = [settings.bundle_path(key) for key in settings.bundles]
    out = {}
    for arm in arms:
        model = (engines if arm.mode == "direct" else services).get(arm.name)
        catalog = getattr(model, "catalog", None)
        if catalog is not None:
            out[arm.name] = Popularity.from_bundles(catalog, bundle_dirs)
    return out
