"""Rows of the engine-placement benchmark (benchmarks/engine_placement.py): ratios against the in-ingress row."""

from __future__ import annotations

import pytest

from benchmarks.engine_placement import rows_of


@pytest.mark.timeout(10)
def test_ratios_are_against_the_engine_inside_the_ingress():
    def result(p50: float, rps: float) -> dict:
        return {"startup_s": 1.0, "single": {"p50_ms": p50, "p99_ms": 2 * p50, "mean_ms": p50, "ok": 10},
                "concurrent": {"p50_ms": 3 * p50, "rps": rps, "ok": 50, "sent": 51}}

    rows = rows_of({"in_ingress": result(40.0, 50.0), "engine_deployment": result(50.0, 40.0)}, 10, 20.0)
    base, hop = (r["metrics"] for r in rows)
    assert "ratio_p50" not in base and (base["ok"], base["sent"]) == (60, 61)
    assert hop["ratio_p50"] == 1.25 and hop["ratio_rps"] == 0.8
    assert rows[1]["notes"].startswith("engine.replicas=1;")
