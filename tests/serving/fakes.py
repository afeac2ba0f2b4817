"""Fakes and builders for pipeline and app tests: a scripted direct engine, settings, a pipeline on real Redis."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from feature_store.store import FeatureStore
from serving.engine import DirectQuery, ScoredItem
from serving.errors import RequestInvalid
from serving.feedback import JsonlFeedbackLog
from serving.metrics import ServingMetrics
from serving.pipeline import RecommendPipeline
from serving.popularity import Popularity
from serving.reasoning import ReasoningService
from serving.settings import ServeSettings
from tests.redis_server import free_port
from tests.serving.bundles import tiny_catalog


class FakeEngine:
    """Direct engine over the tiny catalog: unseen items in reverse catalog order, score -rank; `delay_s` per batch.

    Records every batch it ran (`batches`: lists of queries)."""

    bundle_version = "policy-v1"

    def __init__(self, delay_s: float = 0.0):
        self.catalog, self.delay_s, self.batches = tiny_catalog(), delay_s, []

    def recommend_batch(self, queries):
        self.batches.append(list(queries))
        time.sleep(self.delay_s)
        return [self._answer(q) for q in queries]

    def _answer(self, query: DirectQuery):
        if not query.history:
            return RequestInvalid("the history is empty")
        seen = set(query.history) if query.exclude_seen else set()
        ids = [i for i in reversed(self.catalog.item_ids) if i not in seen][: query.k]
        return [ScoredItem(i, self.catalog.info(i).title, -float(r)) for r, i in enumerate(ids)]

    def describe(self) -> dict:
        return {"engine": "fake", "bundle_version": self.bundle_version, "n_items": len(self.catalog)}

    def warm(self) -> None:
        self.recommend_batch([DirectQuery(("1",), 1)])


class FakeAsyncEngine(FakeEngine):
    """An engine that batches by itself (like vLLM): `async recommend(query)`, `queue_depth` = calls in flight."""

    def __init__(self, delay_s: float = 0.0):
        super().__init__(delay_s)
        self.queue_depth = 0
        self.shut_down = False

    async def recommend(self, query: DirectQuery):
        self.queue_depth += 1
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.queue_depth -= 1
        answer = self._answer(query)
        if isinstance(answer, RequestInvalid):
            raise answer
        return answer

    async def warm_async(self) -> None:
        await self.recommend(DirectQuery(("1",), 1))

    def shutdown(self) -> None:
        self.shut_down = True


def make_settings(redis_url: str, tmp_path: Path, **overrides) -> ServeSettings:
    """Two arms, direct (bundle sft) and reasoning (bundle rechead), 50/50; history-only fallback; fast timeouts."""
    raw = {"redis_url": redis_url, "namespace": "t", "feedback_log": str(tmp_path / "feedback.jsonl"),
           "max_k": 10, "request_timeout_s": 2.0, "reasoning_fallback": "history_only", "redis_timeout_s": 0.25,
           "redis_retries": 0,
           "engine": {"max_batch_size": 4, "batch_wait_ms": 1, "max_queue": 8},
           "bundles": {"sft": str(tmp_path / "sft"), "rechead": str(tmp_path / "rechead")},
           "experiments": [{"name": "mode_ab", "salt": "s1", "arms": [
               {"name": "direct", "mode": "direct", "bundle": "sft", "weight": 50},
               {"name": "reasoning", "mode": "reasoning", "bundle": "rechead", "weight": 50}]}]}
    for key, value in overrides.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) and key in raw else value
    return ServeSettings.model_validate(raw)


def dead_redis_url() -> str:
    """A Redis URL where nothing listens (connections are refused at once)."""
    return f"redis://127.0.0.1:{free_port()}/0"


def make_store(settings: ServeSettings) -> FeatureStore:
    return FeatureStore(settings.redis_url, settings.namespace, timeout_s=settings.redis_timeout_s,
                        retries=settings.redis_retries, backoff_s=0.01)


def make_service(bundle: Path, store: FeatureStore | None, encoder, fallback: str = "history_only"):
    return ReasoningService.from_bundle(bundle, store, encoder=encoder, fallback=fallback)


def make_pipeline(settings: ServeSettings, store: FeatureStore, service: ReasoningService | None = None,
                  engine: FakeEngine | None = None, direct_fallback: bool = True,
                  warm: bool = True) -> RecommendPipeline:
    """The pipeline over a FakeEngine (arm direct, and the reasoning arm's direct fallback) and `service`."""
    engine = engine or FakeEngine()
    engines = {"direct": engine, **({"reasoning": engine} if direct_fallback else {})}
    reasoning = {"reasoning": service} if service is not None else {}
    catalog = tiny_catalog()
    popularity = {"direct": Popularity(catalog, {"5": 9, "6": 7}), "reasoning": Popularity(catalog, {"5": 9})}
    pipeline = RecommendPipeline(settings, engines, reasoning, store, ServingMetrics(["direct", "reasoning"]),
                                 JsonlFeedbackLog(settings.feedback_log), popularity)
    if warm:
        pipeline.warm()
    return pipeline


def user_in_arm(pipeline: RecommendPipeline, arm: str, prefix: str = "u") -> str:
    """A user id that the active experiment assigns to `arm`."""
    return next(f"{prefix}{i}" for i in range(10_000) if pipeline.experiment.assign(f"{prefix}{i}") == arm)
