"""Capacity formulas: pure functions of measured per-node figures and stated traffic (issue 13, "capacity model").

`benchmarks/capacity.py` feeds them the figures the other benchmarks measured (reports/*.json) and what it
measures itself (Redis bytes per user, FAISS bytes per item, feedback-log bytes per event); each function is
tested on hand-computed cases in tests/benchmarks/test_capacity.py. Units are in the names: `_rps` requests/s,
`_ms` milliseconds, `_bytes`, `_h` hours. A "node" is one machine like the one a figure was measured on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

SECONDS_PER_DAY = 86_400
GIB = 1024**3
EPS = 1e-9  # float slack for ceil: 3.0000000000000004 must not round up to 4


def ceil_count(x: float) -> int:
    """Smallest whole number >= x, ignoring float noise of 1e-9 (0 for x <= 0)."""
    return max(0, math.ceil(x - EPS))


def mean_rps(users: float, requests_per_user_day: float) -> float:
    """Average request rate: users × requests per user per day / 86,400 s."""
    return users * requests_per_user_day / SECONDS_PER_DAY


def peak_rps(users: float, requests_per_user_day: float, peak_to_mean: float) -> float:
    """Peak request rate: mean_rps × peak_to_mean (the busiest hour over the daily mean)."""
    return mean_rps(users, requests_per_user_day) * peak_to_mean


def split_by_mode(total_rps: float, reasoning_share: float, cache_hit_rate: float) -> dict[str, float]:
    """Requests/s each engine serves.

    reasoning_cached = total × share × hit (answered from a cached CoT / user vector);
    direct = total × (1 - share) + total × share × (1 - hit) (direct arms, plus reasoning misses that fall
    back to direct mode, the default fallback).
    """
    if not (0 <= reasoning_share <= 1 and 0 <= cache_hit_rate <= 1):
        raise ValueError("reasoning_share and cache_hit_rate are fractions in [0, 1]")
    cached = total_rps * reasoning_share * cache_hit_rate
    return {"reasoning_cached": cached, "direct": total_rps - cached}


def replicas_needed(load_rps: float, per_replica_rps: float, target_utilisation: float) -> int:
    """ceil(load / (per-replica capacity × target utilisation)); 0 replicas for no load."""
    if per_replica_rps <= 0 or not 0 < target_utilisation <= 1:
        raise ValueError("per_replica_rps must be > 0 and target_utilisation in (0, 1]")
    return ceil_count(load_rps / (per_replica_rps * target_utilisation))


def rps_with_extra_cpu(measured_rps: float, cores: float, extra_ms: float) -> float:
    """Per-node capacity when each request costs `extra_ms` more single-threaded CPU time.

    A node of `cores` saturated at measured_rps spends cores × 1000 / measured_rps core-ms per request;
    with the extra work: cores × 1000 / (cores × 1000 / measured_rps + extra_ms).
    """
    core_ms = cores * 1000.0 / measured_rps
    return cores * 1000.0 / (core_ms + extra_ms)


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares (intercept, slope) of y = intercept + slope × x over >= 2 points with distinct x."""
    if len(xs) != len(ys) or len(set(xs)) < 2:
        raise ValueError("fit_line needs >= 2 points with distinct x")
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return my - slope * mx, slope


def redis_bytes_per_user(base_bytes: float, bytes_per_cot_char: float, cot_chars: float) -> float:
    """Measured Redis memory of one user row: base (history, answer, vector, versions, key, TTL) + CoT chars."""
    return base_bytes + bytes_per_cot_char * cot_chars


def redis_memory_bytes(users: float, bytes_per_user: float, headroom: float) -> float:
    """users × bytes per user × headroom (allocator fragmentation, replication and fork copy-on-write)."""
    return users * bytes_per_user * headroom


def shards_needed(total_bytes: float, bytes_per_shard: float) -> int:
    """Redis shards (or machines) of `bytes_per_shard` usable memory: ceil(total / per shard), at least 1."""
    return max(1, ceil_count(total_bytes / bytes_per_shard))


def nearline_node_hours(users: float, tokens_per_user: float, tokens_per_s: float) -> float:
    """Node-hours of CoT generation: users × tokens per user / (tokens/s of one node) / 3,600."""
    return users * tokens_per_user / tokens_per_s / 3600.0


def nodes_for_window(node_hours: float, window_h: float) -> int:
    """Nodes that finish `node_hours` of work within `window_h` hours: ceil(node_hours / window_h)."""
    return ceil_count(node_hours / window_h)


def index_bytes(n_items: float, bytes_per_item: float, fixed_bytes: float = 0.0) -> float:
    """FAISS/ID-map memory: fixed part (IVF centroids, headers) + n_items × bytes per item."""
    return fixed_bytes + n_items * bytes_per_item


def ivf_scanned_vectors(n_items: float, nlist: int, nprobe: int) -> float:
    """Vectors one IVF query compares against: nlist centroids + nprobe lists of n / nlist items each."""
    return nlist + min(nprobe, nlist) * n_items / nlist


def scale_latency(ms_ref: float, work_ref: float, work_new: float) -> float:
    """Latency extrapolated in proportion to work (e.g. scanned vectors): ms_ref × work_new / work_ref."""
    return ms_ref * work_new / work_ref


def log_bytes_per_day(users: float, requests_per_user_day: float, events_per_request: float,
                      bytes_per_event: float) -> float:
    """Feedback-log growth: users × requests/day × events per request × bytes per event."""
    return users * requests_per_user_day * events_per_request * bytes_per_event
