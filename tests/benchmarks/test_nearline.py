"""The nearline report's Targets section (benchmarks/nearline.py) from rows, and the rows it carries over."""

from __future__ import annotations

import json

import pytest

from benchmarks.nearline import carried_rows, targets_markdown


@pytest.mark.timeout(10)
def test_targets_are_judged_from_the_rows():
    rows = [{"name": "nearline", "metrics": {"ratio": 0.88}},
            {"name": "faiss_ivf_1000000", "metrics": {"build_s": 27.5, "p50_ms": 4.9, "recall": 0.951}},
            {"name": "faiss_hnsw_1000000", "metrics": {"build_s": 61.0, "p50_ms": 1.0, "recall": 0.99}},
            {"name": "faiss_flat_1000000", "metrics": {"skipped": "too slow"}}]
    lines = targets_markdown(rows).splitlines()
    assert lines[2] == "- nearline job / raw vLLM users/s = 0.880 (target >= 0.9): **not met**"
    assert lines[3].startswith("- FAISS ivf at 1M items: build 27.5 s") and lines[3].endswith("**met**")
    assert lines[4].startswith("- FAISS hnsw") and lines[4].endswith("**not met**")  # the build is too slow
    assert len(lines) == 5  # a kind without measurements is left out


@pytest.mark.timeout(10)
def test_skipped_sections_carry_the_old_rows_with_their_origin(tmp_path):
    old = {"command": "python -m benchmarks.nearline", "git_commit": "abc", "created_at": "2026-11-30T00:00:00Z",
           "rows": [{"name": "raw_vllm", "metrics": {}}, {"name": "faiss_ivf_1000", "metrics": {}},
                    {"name": "redis_read_1", "metrics": {}, "from_run": "earlier"}]}
    path = tmp_path / "nearline.json"
    path.write_text(json.dumps(old))
    carried = carried_rows(["faiss", "redis"], path)
    assert [r["name"] for r in carried] == ["faiss_ivf_1000", "redis_read_1"]
    assert carried[0]["from_run"] == "python -m benchmarks.nearline (commit abc, 2026-11-30T00:00:00Z)"
    assert carried[1]["from_run"] == "earlier"
