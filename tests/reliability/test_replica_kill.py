"""An engine replica of the real Ray Serve stack SIGKILLed under traffic (loadtests/reliability/replica.py)."""

from __future__ import annotations

import pytest

from loadtests.reliability.replica import run_replica_kill

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.timeout(480)
def test_a_killed_replica_is_restarted_and_no_request_hangs(stack):
    scenario = run_replica_kill(stack, replicas=2, restart_within_s=150.0, after_s=4.0)
    assert scenario.verdict == "pass", (scenario.failed, scenario.row())
    assert scenario.metrics["timeouts"] == 0 and scenario.metrics["replica_back_s"] is not None


@pytest.mark.timeout(480)
def test_a_killed_engine_replica_costs_503s_with_retry_after_not_500s_or_hangs(stack):
    # the only replica of the engine deployment: direct requests get the engine timeout (503) until Serve replaces it
    scenario = run_replica_kill(stack, replicas=1, restart_within_s=150.0, after_s=4.0, target="engine")
    assert scenario.verdict == "pass", (scenario.failed, scenario.row())
    assert scenario.metrics["in_flight_500"] == 0 and scenario.responses.get("500", 0) == 0
