"""Scenario `fuzz`: property-based requests from the app's own OpenAPI schema (schemathesis + hypothesis).

Every operation of /openapi.json gets `examples` valid cases (schemathesis "positive" mode: bodies, headers and
paths the schema allows) and `examples` invalid ones ("negative": wrong types, missing or extra fields, values
out of range), sent over loopback HTTP to the app under uvicorn, on the tiny bundles and a real Redis with seeded
users. Properties: no answer is a 5xx (a client's bad input is a 4xx, DESIGN.md §6), no request hangs past the
client timeout, and every error answer carries its reason (`detail`, a non-empty string). A case the HTTP client
itself refuses to send (e.g. a header with a newline) is counted as unsendable, not as an answer.
"""

from __future__ import annotations

import time
from collections import Counter

from loadtests.reliability.harness import Scenario, Stack, ThreadServer, seed_users, timed, user_histories

NAMESPACE = "rel_fuzz"
CLIENT_TIMEOUT_S = 10.0


def fuzz_app(url: str, openapi: dict, examples: int, seed: int) -> dict:
    """Run the cases; {"statuses": Counter, "violations": [str], "unsendable": int, "operations": [str]}."""
    import hypothesis
    import requests
    import schemathesis
    from schemathesis.generation import GenerationMode

    schema = schemathesis.openapi.from_dict(openapi)
    found: dict = {"statuses": Counter(), "violations": [], "unsendable": 0, "operations": [], "slowest_s": 0.0,
                   "no_invalid_form": []}
    settings = hypothesis.settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                                   suppress_health_check=list(hypothesis.HealthCheck), phases=[
                                       hypothesis.Phase.explicit, hypothesis.Phase.generate])
    for result in schema.get_all_operations():
        operation = result.ok()
        found["operations"].append(f"{operation.method.upper()} {operation.path}")
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @settings
            @hypothesis.seed(seed)
            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            def run(case) -> None:
                started = time.monotonic()
                try:
                    response = case.call(base_url=url, timeout=CLIENT_TIMEOUT_S)
                except requests.Timeout:
                    found["statuses"]["timeout"] += 1
                    found["violations"].append(f"{case.method} {case.formatted_path}: no answer within "
                                               f"{CLIENT_TIMEOUT_S:g} s")
                    return
                except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, ValueError):
                    found["unsendable"] += 1
                    return
                found["slowest_s"] = max(found["slowest_s"], time.monotonic() - started)
                found["statuses"][response.status_code] += 1
                problem = violation(response.status_code, _header(response, "content-type"), _json_or_none(response))
                if problem:
                    found["violations"].append(f"{case.method} {case.formatted_path} -> {response.status_code}: "
                                               f"{problem}; body {response.text[:200]!r}")

            try:
                run()
            except hypothesis.errors.Unsatisfiable:  # no parameters, nothing to make invalid (GET /healthz)
                found["no_invalid_form"].append(f"{operation.method.upper()} {operation.path}")
    return found


def violation(status: int, content_type: str, body: object) -> str | None:
    """Why an answer breaks the API's error contract, or None when it keeps it."""
    if status >= 500:
        return "a 5xx answer"
    if status >= 400:
        if not content_type.startswith("application/json") or not isinstance(body, dict):
            return "an error without a JSON body"
        detail = body.get("detail")
        if not isinstance(detail, str) or not detail.strip():
            return "an error without a reason (`detail` is not a non-empty string)"
    return None


def _header(response, name: str) -> str:
    """A response header as one string (schemathesis keeps each header as a list of values)."""
    value = response.headers.get(name) or ""
    return value[0] if isinstance(value, list) and value else value if isinstance(value, str) else ""


def _json_or_none(response) -> object:
    try:
        return response.json()
    except ValueError:
        return None


def run_fuzz(stack: Stack, examples: int = 25, seed: int = 0) -> Scenario:
    """The fuzz scenario on an in-process app (native engine, Rechead + MiniLM, real Redis with 12 seeded users)."""
    from serving.app import build_app
    from serving.loading import build_pipeline_from_settings

    scenario = Scenario("fuzz", injected=f"schemathesis cases from /openapi.json: {examples} valid + {examples} "
                                         f"invalid per operation (hypothesis seed {seed})")
    with timed(scenario):
        settings = stack.settings(NAMESPACE, request_timeout_s=5.0)
        seed_users(settings, user_histories(12))
        pipeline = build_pipeline_from_settings(settings)
        try:
            app = build_app(pipeline)
            with ThreadServer(app) as server:
                found = fuzz_app(server.url, app.openapi(), examples, seed)
        finally:
            pipeline.close()
        statuses = found["statuses"]
        scenario.requests = sum(statuses.values())
        scenario.responses = {str(k): v for k, v in sorted(statuses.items(), key=lambda kv: str(kv[0]))}
        scenario.compared = "each answer against the error contract: status < 500, errors carry a `detail` reason"
        scenario.metrics = {"operations": len(found["operations"]), "unsendable": found["unsendable"],
                            "violations": len(found["violations"]), "slowest_ms": round(found["slowest_s"] * 1000, 1),
                            "errors_5xx": sum(v for k, v in statuses.items() if isinstance(k, int) and k >= 500)}
        scenario.check("every operation fuzzed", len(found["operations"]) >= 6)
        scenario.check("cases were answered", scenario.requests >= 2 * examples)
        scenario.check("some valid requests succeeded", statuses.get(200, 0) > 0)
        scenario.check("no 5xx, no hang, every error has a reason", not found["violations"])
        scenario.notes = "; ".join(found["violations"][:5]) or "operations: " + ", ".join(found["operations"])
    return scenario
