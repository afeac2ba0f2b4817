"""Overload and a shortened soak on the app in its own process (loadtests/reliability/load.py)."""

from __future__ import annotations

import pytest

from loadtests.reliability.harness import ProcessServer
from loadtests.reliability.load import overload_settings, rss_trend, run_overload, run_soak

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(stack):
    """One server process for both tests (its start-up is the slow part)."""
    with ProcessServer(overload_settings(stack), stack.workdir / "load") as process:
        yield process


@pytest.mark.timeout(180)
def test_load_above_capacity_is_shed_with_503_and_retry_after(stack, server):
    scenario = run_overload(stack, seconds=6.0, workers=16, server=server)
    assert scenario.verdict == "pass", (scenario.failed, scenario.row())
    assert set(scenario.responses) <= {"200", "503"} and scenario.responses["503"] > 0


@pytest.mark.timeout(180)
def test_a_short_soak_shows_no_rss_growth(stack, server):
    scenario = run_soak(stack, seconds=35.0, warmup_s=10.0, server=server)
    assert scenario.verdict == "pass", (scenario.failed, scenario.row())
    assert scenario.metrics["samples"] >= 20


@pytest.mark.timeout(10)
def test_the_rss_judge_sees_a_leak_and_ignores_the_warm_up():
    flat = [(t, 500 * 2**20 + (200 * 2**20 if t < 5 else 0)) for t in range(60)]  # warm-up jump, then flat
    leak = [(t, 500 * 2**20 + t * 2**20) for t in range(60)]  # 1 MB/s
    assert rss_trend(flat, warmup_s=10)["rss_growth_mb"] == 0 and rss_trend(flat, 10)["rss_slope_mb_per_min"] == 0
    trend = rss_trend(leak, warmup_s=10)
    assert trend["rss_slope_mb_per_min"] == pytest.approx(60, abs=0.5) and trend["rss_growth_mb"] > 16
