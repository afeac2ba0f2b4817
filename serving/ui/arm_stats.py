"""Per-arm figures for the page's panel, read from the app's own Prometheus registry (serving/metrics.py).

Figures per arm: recommend requests (any status), p50/p99 latency (the histogram over all of the arm's recommend
requests), fallback rate (answers given by a fallback path / answered requests), exposures, clicks and CTR
(feedback events this process logged). They cover this process since it started: with several ingress replicas
each page shows its replica's share; Prometheus (deploy/prometheus) sums the replicas.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from prometheus_client import CollectorRegistry

RECOMMEND = "/v1/recommend"


@dataclass(frozen=True)
class MetricSample:
    """One Prometheus sample: full name (with _total / _bucket suffix), labels, value."""

    name: str
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class ArmPanel:
    arm: str
    mode: str
    requests: int
    answered: int
    p50_ms: float | None
    p99_ms: float | None
    fallbacks: int
    fallback_rate: float | None
    exposures: int
    clicks: int
    ctr: float | None

    def to_json(self) -> dict:
        return asdict(self)


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus' `histogram_quantile`: the q-quantile of cumulative buckets [(upper bound le, count ≤ le)].

    rank = q · total; the first bucket whose cumulative count reaches the rank holds the quantile, placed by linear
    interpolation between the bucket's lower bound (the previous le; 0 for the first bucket) and its le:
        lower + (le − lower) · (rank − count_below) / (count_in_bucket).
    A rank in the +Inf bucket gives the largest finite bound. None when there are no observations.
    """
    if not 0 <= q <= 1:
        raise ValueError(f"q must be in [0, 1], got {q}")
    ordered = sorted(buckets)
    total = ordered[-1][1] if ordered else 0
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for le, cumulative in ordered:
        if cumulative >= rank and cumulative > below:
            if math.isinf(le):
                return lower
            return lower + (le - lower) * (rank - below) / (cumulative - below)
        lower, below = (lower if math.isinf(le) else le), cumulative
    return lower


def collect_samples(registry: CollectorRegistry) -> list[MetricSample]:
    """Every sample of the registry, flattened."""
    return [MetricSample(s.name, dict(s.labels), float(s.value))
            for metric in registry.collect() for s in metric.samples]


def arm_panel(arm: str, mode: str, samples: Iterable[MetricSample], namespace: str = "reasonrec") -> ArmPanel:
    """The figures of `arm` from `samples` (see the module docstring)."""
    samples = [s for s in samples if s.labels.get("arm") == arm]
    recommend = [s for s in samples if s.labels.get("endpoint") == RECOMMEND]
    requests = _sum(recommend, f"{namespace}_requests_total")
    answered = _sum([s for s in recommend if s.labels.get("status") == "200"], f"{namespace}_requests_total")
    buckets = _merged_buckets(recommend, f"{namespace}_request_latency_seconds_bucket")
    fallbacks = _sum(samples, f"{namespace}_fallbacks_total")
    feedback = f"{namespace}_feedback_events_total"
    exposures = _sum([s for s in samples if s.labels.get("event") == "exposure"], feedback)
    clicks = _sum([s for s in samples if s.labels.get("event") == "click"], feedback)
    return ArmPanel(arm=arm, mode=mode, requests=requests, answered=answered,
                    p50_ms=_ms(histogram_quantile(0.5, buckets)), p99_ms=_ms(histogram_quantile(0.99, buckets)),
                    fallbacks=fallbacks, fallback_rate=_ratio(fallbacks, answered),
                    exposures=exposures, clicks=clicks, ctr=_ratio(clicks, exposures))


def _sum(samples: Iterable[MetricSample], name: str) -> int:
    return int(sum(s.value for s in samples if s.name == name))


def _merged_buckets(samples: Iterable[MetricSample], name: str) -> list[tuple[float, float]]:
    """Cumulative buckets summed over every label set (modes, statuses) of the arm."""
    merged: dict[float, float] = {}
    for s in samples:
        if s.name == name:
            le = float(s.labels["le"])
            merged[le] = merged.get(le, 0.0) + s.value
    return sorted(merged.items())


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None
