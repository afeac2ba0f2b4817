"""Pooling of several load runs: warm-ups left out per run, rps over the measured windows only, CPU summed."""

from __future__ import annotations

import pytest

from loadtests.measure import add_cpu, summarize, summarize_rounds

pytestmark = pytest.mark.timeout(30)


def run(start: float, latencies_ms: list[float], ok: bool = True) -> list[tuple]:
    """Samples (start s, latency ms, ok, server ms, path ok), one request after another from `start`."""
    samples, t = [], start
    for latency in latencies_ms:
        samples.append((t, latency, ok, None, True))
        t += latency / 1000
    return samples


def test_one_round_is_summarize():
    samples = run(0.0, [100.0] * 30)
    assert summarize_rounds([samples], 1.0) == summarize(samples, 1.0)


def test_rounds_pool_their_windows_and_skip_the_gap_between_them():
    # round 1: 20 x 125 ms from t=0, after the 1 s warm-up 12 kept over [1, 2.5] s;
    # round 2: 20 x 62.5 ms from t=100, 4 kept over [101, 101.25] s
    first, second = run(0.0, [125.0] * 20), run(100.0, [62.5] * 20)
    stats = summarize_rounds([first, second], 1.0)
    assert stats["requests"] == 40 and stats["errors"] == 0
    assert stats["rps"] == pytest.approx(16 / 1.75, abs=0.05)  # over 1.5 s + 0.25 s, not over 101.25 s
    assert stats["p50_ms"] == pytest.approx(125.0)
    assert stats["mean_ms"] == pytest.approx((12 * 125 + 4 * 62.5) / 16, abs=0.01)


def test_errors_count_over_whole_runs():
    stats = summarize_rounds([run(0.0, [100.0] * 20), run(50.0, [100.0] * 5, ok=False)], 0.0)
    assert stats["errors"] == 5 and stats["error_rate"] == pytest.approx(0.2)


def test_add_cpu_sums_seconds_and_averages_the_mean_batch():
    total = add_cpu([{"driver": 1.5, "wall": 10.0, "mean_batch": 8.0},
                     {"driver": 0.5, "wall": 10.0, "mean_batch": 6.0}])
    assert total == {"driver": 2.0, "wall": 20.0, "mean_batch": 7.0}
