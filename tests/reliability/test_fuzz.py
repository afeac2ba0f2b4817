"""The HTTP API fuzzed from its own OpenAPI schema (loadtests/reliability/fuzz.py): no 5xx, every error a reason."""

from __future__ import annotations

import pytest

from loadtests.reliability.fuzz import run_fuzz, violation

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.timeout(240)
def test_fuzzed_requests_never_get_a_5xx_and_every_error_has_a_reason(stack):
    scenario = run_fuzz(stack, examples=15, seed=0)
    assert scenario.verdict == "pass", (scenario.failed, scenario.row())
    assert not [status for status in scenario.responses if status.isdigit() and int(status) >= 500]
    assert scenario.responses.get("422", 0) > 0 and scenario.responses.get("200", 0) > 0


@pytest.mark.timeout(10)
def test_the_error_contract_flags_a_5xx_and_an_error_without_reason():
    assert violation(200, "application/json", {"items": []}) is None
    assert violation(422, "application/json", {"detail": "body.k: too small"}) is None
    assert violation(500, "application/json", {"detail": "internal error (RuntimeError)"}) == "a 5xx answer"
    assert "without a reason" in violation(422, "application/json", {"detail": [{"loc": ["k"]}]})
    assert "without a reason" in violation(404, "application/json", {"detail": " "})
    assert violation(503, "text/plain", None) == "a 5xx answer"
    assert "JSON body" in violation(400, "text/plain", None)
