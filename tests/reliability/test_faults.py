"""Faults without Ray (loadtests/reliability/faults.py, nearline.py): Redis killed, the nearline job killed, a bad
bundle at hot reload, feedback across a server restart. Each test runs the report's scenario, shortened."""

from __future__ import annotations

import pytest

from loadtests.reliability.faults import run_bad_bundle, run_feedback_restart, run_redis_kill
from loadtests.reliability.nearline import run_nearline_kill

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def assert_passed(scenario) -> None:
    assert scenario.verdict == "pass", (scenario.failed, scenario.row())


@pytest.mark.timeout(150)
def test_redis_killed_mid_traffic_falls_back_then_recovers_without_an_app_restart(stack):
    scenario = run_redis_kill(stack, phase_s=2.0)
    assert_passed(scenario)
    assert set(scenario.responses) <= {"200", "503"}
    assert scenario.metrics["fallback_while_down"] == scenario.metrics["requests_down"] > 0


@pytest.mark.timeout(150)
def test_the_nearline_job_killed_at_a_random_chunk_resumes_to_the_same_store(stack):
    scenario = run_nearline_kill(stack, users=40, chunk_size=4)  # a fresh random kill point each run (seed in row)
    assert_passed(scenario)
    assert scenario.metrics["chunks_skipped"] == scenario.metrics["done_at_kill"] > 0


@pytest.mark.timeout(150)
def test_a_missing_or_corrupt_bundle_at_reload_is_refused_and_the_old_one_keeps_serving(stack):
    scenario = run_bad_bundle(stack)
    assert_passed(scenario)
    assert scenario.metrics["reloads"] == {"missing": 409, "corrupt_weights": 409, "corrupt_manifest": 409,
                                           "restored": 200}


@pytest.mark.timeout(180)
def test_feedback_sent_across_a_server_crash_is_logged_exactly_once(stack):
    scenario = run_feedback_restart(stack, ("SIGKILL",), n_events=400)
    assert_passed(scenario)
    assert scenario.metrics["log_rows"] == scenario.metrics["log_distinct"] == 400
