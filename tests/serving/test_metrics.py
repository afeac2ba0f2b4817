"""Serving metrics: the documented series, bounded labels, no user ids, one registry per instance."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from serving.metrics import ServingMetrics

pytestmark = pytest.mark.timeout(10)


def _samples(metrics: ServingMetrics) -> dict:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(body.decode()) for s in fam.samples}


def test_render_holds_every_series_and_no_user_id():
    m = ServingMetrics(arms=["direct", "reasoning"])
    m.observe_request("/v1/recommend", 200, 0.012, mode="direct", arm="direct")
    m.observe_fallback("reasoning", "no_cached_cot")
    m.observe_cot_lookup(hit=True)
    m.observe_cot_lookup(hit=False)
    m.observe_feedback("user-123456", "click")  # a client may send anything as arm
    m.set_queue_depth("native", 3)
    with m.time_dependency("redis"):
        pass
    body = m.render()[0].decode()
    for series in ("reasonrec_requests_total", "reasonrec_request_latency_seconds_bucket",
                   "reasonrec_fallbacks_total", "reasonrec_dependency_latency_seconds_count",
                   "reasonrec_cot_cache_lookups_total", "reasonrec_engine_queue_depth",
                   "reasonrec_feedback_events_total"):
        assert series in body
    assert "user-123456" not in body
    s = _samples(m)
    key = (("arm", "direct"), ("endpoint", "/v1/recommend"), ("mode", "direct"), ("status", "200"))
    assert s[("reasonrec_requests_total", key)] == 1
    assert s[("reasonrec_feedback_events_total", (("arm", "unknown"), ("event", "click")))] == 1
    assert s[("reasonrec_engine_queue_depth", (("engine", "native"),))] == 3


def test_unknown_labels_collapse_and_registries_are_separate():
    a, b = ServingMetrics(arms=["x"]), ServingMetrics(arms=["x"])
    a.observe_request("/v1/users/42", 404, 0.001, mode="weird", arm="x")
    s = _samples(a)
    assert s[("reasonrec_requests_total", (("arm", "x"), ("endpoint", "other"), ("mode", "other"),
                                           ("status", "404")))] == 1
    assert "reasonrec_requests_total{" not in b.render()[0].decode()


def test_dependency_timing_counts_failures_and_refuses_unknown_names():
    m = ServingMetrics(arms=[])
    with pytest.raises(RuntimeError), m.time_dependency("faiss"):
        raise RuntimeError("boom")
    assert _samples(m)[("reasonrec_dependency_latency_seconds_count", (("dependency", "faiss"),))] == 1
    with pytest.raises(ValueError, match="unknown dependency"), m.time_dependency("postgres"):
        pass


def test_queue_depth_read_at_scrape_time():
    m, depth = ServingMetrics(arms=[]), [5]
    m.track_queue_depth("native", lambda: depth[0])
    depth[0] = 7
    assert _samples(m)[("reasonrec_engine_queue_depth", (("engine", "native"),))] == 7
