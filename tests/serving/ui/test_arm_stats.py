"""The panel's figures: Prometheus-style quantiles by hand, and per-arm sums from a real metrics registry."""

from __future__ import annotations

import math

import pytest

from serving.metrics import ServingMetrics
from serving.ui.arm_stats import MetricSample, arm_panel, collect_samples, histogram_quantile

pytestmark = pytest.mark.timeout(10)
INF = math.inf


def test_quantile_interpolates_inside_the_bucket_that_holds_the_rank():
    # 10 observations: 4 ≤ 0.1, 4 more ≤ 0.2, 2 more ≤ 0.5.
    buckets = [(0.1, 4), (0.2, 8), (0.5, 10), (INF, 10)]
    # p50: rank 5 -> bucket (0.1, 0.2], 1 of its 4 -> 0.1 + 0.1 * 1/4 = 0.125
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.125)
    # p99: rank 9.9 -> bucket (0.2, 0.5], 1.9 of its 2 -> 0.2 + 0.3 * 0.95 = 0.485
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.485)
    # p20: rank 2 in the first bucket, lower bound 0 -> 0.1 * 2/4 = 0.05
    assert histogram_quantile(0.2, buckets) == pytest.approx(0.05)


def test_quantile_in_the_inf_bucket_is_the_largest_finite_bound_and_empty_is_none():
    assert histogram_quantile(0.99, [(0.1, 1), (0.2, 1), (INF, 5)]) == 0.2
    assert histogram_quantile(0.5, [(0.1, 0), (INF, 0)]) is None
    assert histogram_quantile(0.5, []) is None
    with pytest.raises(ValueError, match="q must be"):
        histogram_quantile(1.5, [(INF, 1)])


def test_quantile_skips_empty_leading_buckets():
    # all 3 observations in (0.25, 0.5]: p50 rank 1.5 -> 0.25 + 0.25 * 1.5/3 = 0.375
    assert histogram_quantile(0.5, [(0.1, 0), (0.25, 0), (0.5, 3), (INF, 3)]) == pytest.approx(0.375)


def test_panel_sums_over_modes_and_statuses_of_one_arm():
    ns = "reasonrec"
    samples = [
        MetricSample(f"{ns}_requests_total", {"endpoint": "/v1/recommend", "arm": "a", "mode": "direct",
                                              "status": "200"}, 6),
        MetricSample(f"{ns}_requests_total", {"endpoint": "/v1/recommend", "arm": "a", "mode": "popularity",
                                              "status": "200"}, 2),
        MetricSample(f"{ns}_requests_total", {"endpoint": "/v1/recommend", "arm": "a", "mode": "direct",
                                              "status": "503"}, 2),
        MetricSample(f"{ns}_requests_total", {"endpoint": "/v1/feedback", "arm": "a", "mode": "none",
                                              "status": "200"}, 50),
        MetricSample(f"{ns}_requests_total", {"endpoint": "/v1/recommend", "arm": "b", "mode": "direct",
                                              "status": "200"}, 99),
        MetricSample(f"{ns}_fallbacks_total", {"arm": "a", "reason": "cold_start"}, 2),
        MetricSample(f"{ns}_feedback_events_total", {"arm": "a", "event": "exposure"}, 40),
        MetricSample(f"{ns}_feedback_events_total", {"arm": "a", "event": "click"}, 3),
        *[MetricSample(f"{ns}_request_latency_seconds_bucket", {"endpoint": "/v1/recommend", "arm": "a",
                                                                 "mode": m, "status": "200", "le": le}, n)
          for m, series in (("direct", [("0.1", 2), ("0.2", 6), ("+Inf", 6)]),
                            ("popularity", [("0.1", 2), ("0.2", 2), ("+Inf", 2)]))
          for le, n in series],
    ]
    panel = arm_panel("a", "direct", samples)
    # requests 6 + 2 + 2 (not feedback, not arm b); answered 8; fallback rate 2/8; CTR 3/40
    assert (panel.requests, panel.answered, panel.fallbacks, panel.exposures, panel.clicks) == (10, 8, 2, 40, 3)
    assert panel.fallback_rate == pytest.approx(0.25) and panel.ctr == pytest.approx(0.075)
    # merged buckets (0.1: 4, 0.2: 8): p50 rank 4 -> 0.1 exactly (the first bucket reaches it) = 100 ms
    assert panel.p50_ms == pytest.approx(100.0)


def test_panel_of_an_idle_arm_has_no_rates():
    panel = arm_panel("idle", "reasoning", [])
    assert (panel.requests, panel.p50_ms, panel.p99_ms, panel.fallback_rate, panel.ctr) == (0, None, None, None, None)


def test_panel_reads_the_app_registry():
    metrics = ServingMetrics(["direct", "reasoning"])
    for seconds in (0.004, 0.03, 0.03, 0.2):
        metrics.observe_request("/v1/recommend", 200, seconds, "direct", "direct")
    metrics.observe_request("/v1/recommend", 503, 2.0, "direct", "direct")
    metrics.observe_fallback("direct", "cold_start")
    metrics.observe_feedback("direct", "exposure")
    metrics.observe_feedback("direct", "click")
    panel = arm_panel("direct", "direct", collect_samples(metrics.registry))
    assert (panel.requests, panel.answered, panel.fallbacks, panel.exposures, panel.clicks) == (5, 4, 1, 1, 1)
    assert panel.fallback_rate == 0.25 and panel.ctr == 1.0
    # buckets ≤0.005: 1, ≤0.01: 1, ≤0.025: 1, ≤0.05: 3, ... ≤0.25: 4, ≤2.5: 5; p50 rank 2.5 -> (0.025, 0.05]:
    # 0.025 + 0.025 * (2.5 - 1) / 2 = 0.04375 s
    assert panel.p50_ms == pytest.approx(43.75)
    assert arm_panel("reasoning", "reasoning", collect_samples(metrics.registry)).requests == 0
