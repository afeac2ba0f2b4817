"""Prometheus metrics of the online app, on a registry of their own (DESIGN.md §6).

Series (prefix `reasonrec_`):

    requests_total{endpoint,mode,arm,status}                counter
    request_latency_seconds{endpoint,mode,arm,status}       histogram
    fallbacks_total{arm,reason}                             counter
    dependency_latency_seconds{dependency}                  histogram, dependency = redis | faiss | engine
    cot_cache_lookups_total{result}                         counter, result = hit | miss
    engine_queue_depth{engine}                              gauge
    engine_batch_size{engine}                               histogram: requests per micro-batch (beam search)
    feedback_events_total{arm,event}                        counter, event = exposure | click

Cache hit rate in PromQL: `rate(reasonrec_cot_cache_lookups_total{result="hit"}[5m])
/ ignoring(result) sum without(result)(rate(reasonrec_cot_cache_lookups_total[5m]))`.
No label ever carries a user or request id: endpoints, modes and arms outside the known sets are
recorded as "other" / "unknown", so label cardinality stays bounded whatever clients send.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

ENDPOINTS = frozenset({"/v1/recommend", "/v1/feedback", "/v1/models", "/healthz", "/readyz", "/metrics"})
MODES = frozenset({"direct", "reasoning", "auto", "popularity", "none"})
DEPENDENCIES = ("redis", "faiss", "engine")
EVENTS = frozenset({"exposure", "click"})
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
DEPENDENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
REQUEST_LABELS = ("endpoint", "mode", "arm", "status")


class ServingMetrics:
    """Counters, histograms and gauges of one app instance.

    arms: every configured arm name; any other arm label (a client's feedback may name anything) -> "unknown".
    """

    def __init__(self, arms: Iterable[str], namespace: str = "reasonrec"):
        self.registry = CollectorRegistry()
        self.arms = frozenset(arms) | {"none"}
        common = {"namespace": namespace, "registry": self.registry}
        self.requests = Counter("requests_total", "HTTP requests", REQUEST_LABELS, **common)
        self.request_latency = Histogram("request_latency_seconds", "HTTP request latency", REQUEST_LABELS,
                                         buckets=REQUEST_BUCKETS, **common)
        self.fallbacks = Counter("fallbacks_total", "answers given by a fallback path", ("arm", "reason"), **common)
        self.dependency_latency = Histogram("dependency_latency_seconds", "latency of a dependency call",
                                            ("dependency",), buckets=DEPENDENCY_BUCKETS, **common)
        self.cot_cache = Counter("cot_cache_lookups_total", "cached-CoT lookups", ("result",), **common)
        self.engine_queue = Gauge("engine_queue_depth", "requests waiting for an engine batch", ("engine",),
                                  **common)
        self.engine_batch = Histogram("engine_batch_size", "requests per engine micro-batch", ("engine",),
                                      buckets=BATCH_BUCKETS, **common)
        self.feedback = Counter("feedback_events_total", "feedback events accepted", ("arm", "event"), **common)

    def observe_request(self, endpoint: str, status: int, latency_s: float, mode: str = "none",
                        arm: str = "none") -> None:
        """One finished HTTP request (any status)."""
        labels = (self._endpoint(endpoint), self._mode(mode), self._arm(arm), str(int(status)))
        self.requests.labels(*labels).inc()
        self.request_latency.labels(*labels).observe(max(0.0, latency_s))

    def observe_fallback(self, arm: str, reason: str) -> None:
        """reason: the response's short fallback code ("no_cached_cot", "redis_unavailable", ...)."""
        self.fallbacks.labels(self._arm(arm), str(reason)[:64]).inc()

    def observe_cot_lookup(self, hit: bool) -> None:
        self.cot_cache.labels("hit" if hit else "miss").inc()

    def observe_feedback(self, arm: str | None, event: str) -> None:
        if event not in EVENTS:
            raise ValueError(f"unknown feedback event {event!r}; known: {sorted(EVENTS)}")
        self.feedback.labels(self._arm(arm or "none"), event).inc()

    def observe_dependency(self, dependency: str, seconds: float) -> None:
        if dependency not in DEPENDENCIES:
            raise ValueError(f"unknown dependency {dependency!r}; known: {list(DEPENDENCIES)}")
        self.dependency_latency.labels(dependency).observe(max(0.0, seconds))

    @contextmanager
    def time_dependency(self, name: str) -> Iterator[None]:
        """Times the block as a call to dependency `name` (redis|faiss|engine), also when it raises."""
        if name not in DEPENDENCIES:
            raise ValueError(f"unknown dependency {name!r}; known: {list(DEPENDENCIES)}")
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe_dependency(name, time.perf_counter() - start)

    def set_queue_depth(self, engine: str, depth: int) -> None:
        self.engine_queue.labels(engine).set(depth)

    def observe_batch(self, engine: str, size: int) -> None:
        self.engine_batch.labels(engine).observe(size)

    def track_queue_depth(self, engine: str, read_depth: Callable[[], int]) -> None:
        """Read the depth at scrape time (e.g. `lambda: batcher.queue_depth`) instead of setting it."""
        self.engine_queue.labels(engine).set_function(lambda: float(read_depth()))

    def render(self) -> tuple[bytes, str]:
        """(Prometheus text exposition, its content type) for the /metrics endpoint."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def _endpoint(self, endpoint: str) -> str:
        return endpoint if endpoint in ENDPOINTS else "other"

    def _mode(self, mode: str) -> str:
        return mode if mode in MODES else "other"

    def _arm(self, arm: str) -> str:
        return arm if arm in self.arms else "unknown"
