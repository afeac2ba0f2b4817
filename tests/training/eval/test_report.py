import json
import re

import pytest

from training.eval.report import load_rows, merge_rows, write_report


def _row(name, protocol="temporal", ndcg=0.05):
    return {
        "name": name,
        "dataset": "ml-100k",
        "protocol": protocol,
        "metrics": {"hr@10": 0.1, "ndcg@10": ndcg, "invalid_rate": 0.0},
        "seconds": {"train": 1.5, "eval": 0.25},
        "notes": "seed 0",
    }


def test_write_report_shape(tmp_path):
    rows = [_row("pop"), _row("sasrec", ndcg=0.07), _row("pop", "loo")]
    rows[1]["ci95"] = {"ndcg@10": [0.01, 0.03]}
    md, js = write_report("quality", rows, "python benchmarks/quality.py", out_dir=tmp_path, notes_md="Hi.")
    assert (md, js) == (tmp_path / "quality.md", tmp_path / "quality.json")
    report = json.loads(js.read_text())
    assert list(report) == ["benchmark", "created_at", "command", "git_commit", "machine", "rows"]
    assert report["benchmark"] == "quality" and report["rows"] == rows
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", report["created_at"])
    assert isinstance(report["git_commit"], str) and report["git_commit"]
    assert set(report["machine"]) == {"cpu", "cores", "gpu"}
    text = md.read_text()
    assert "| name | dataset | protocol | hr@10 | ndcg@10 | invalid_rate | seconds | notes |" in text
    assert "| sasrec | ml-100k | temporal | 0.1000 | 0.0700 | 0.0000 | train 1.5, eval 0.250 |" in text
    assert "ci95 ndcg@10 [0.0100, 0.0300]" in text
    assert "](quality_ndcg@10.png)" in text and "Hi." in text
    assert (tmp_path / "quality_ndcg@10.png").stat().st_size > 0


def test_no_plot_when_disabled_or_metric_absent(tmp_path):
    write_report("a", [_row("pop")], "cmd", out_dir=tmp_path, plot_metric=None)
    write_report("b", [_row("pop")], "cmd", out_dir=tmp_path, plot_metric="p50_ms")
    assert not list(tmp_path.glob("*.png"))


def test_merge_rows_replaces_by_key(tmp_path):
    assert load_rows(tmp_path / "missing.json") == []
    _, js = write_report("q", [_row("sasrec"), _row("pop")], "cmd", out_dir=tmp_path, plot_metric=None)
    merged = merge_rows(js, [_row("sasrec", ndcg=0.09), _row("sasrec", "loo")])
    assert [(r["name"], r["protocol"]) for r in merged] == [
        ("sasrec", "temporal"),
        ("pop", "temporal"),
        ("sasrec", "loo"),
    ]
    assert merged[0]["metrics"]["ndcg@10"] == 0.09
    assert merged[1] == _row("pop")
    assert merge_rows(tmp_path / "missing.json", [_row("pop")]) == [_row("pop")]


@pytest.mark.timeout(30)
def test_speed_reports_show_every_metric_they_have():
    from training.eval.report import markdown_table

    rows = [{"name": "hf_generate", "metrics": {"ms_per_prompt": 15.0, "invalid_rate": 0.0}},
            {"name": "vllm_sampler", "metrics": {"ms_per_prompt": 5.0, "invalid_rate": 0.0, "ratio": 3.0}}]
    header = markdown_table(rows).splitlines()[0]
    assert header == "| name | dataset | protocol | ms_per_prompt | invalid_rate | ratio | seconds | notes |"
