"""The readout as a REPORTS.md report: rows by arm plus an srm row, markdown tables, the CTR plot."""

from __future__ import annotations

import json

import pytest

from serving.abtest.events import normalise_rows
from serving.abtest.readout import ReadoutOptions, build_readout, experiment_of
from serving.abtest.report import readout_markdown, readout_rows, write_readout
from serving.settings import ServeSettings
from tests.serving.abtest.logs import HAND_LOG, write_config


@pytest.fixture
def readout(tmp_path):
    experiment = experiment_of(ServeSettings.from_yaml(write_config(tmp_path)), "exp")
    return build_readout(normalise_rows(HAND_LOG)[0], experiment, ReadoutOptions())


@pytest.mark.timeout(10)
def test_rows_are_named_by_arm_with_an_srm_verdict(readout):
    rows = readout_rows(readout)
    assert [r["name"] for r in rows] == ["ctl", "trt", "forced", "srm"]
    ctl, trt, forced, srm = rows
    assert ctl["metrics"]["ctr"] == 0.2 and "lift" not in ctl["metrics"] and ctl["notes"] == "control"
    assert set(trt["ci95"]) == {"ctr", "lift"}
    assert forced["metrics"]["ctr"] is None  # no exposures: null, not NaN
    assert srm["verdict"] == "pass" and srm["counts"] == {"ctl": 2, "trt": 3}
    assert srm["metrics"]["multi_arm_users"] == 1 and srm["metrics"]["other_arm_events"] == 1


@pytest.mark.timeout(30)
def test_write_readout(readout, tmp_path):
    md, js, png = write_readout(readout, tmp_path / "out" / "ab", "reasonrec ab report --experiment exp")
    report = json.loads(js.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert report["benchmark"] == "ab" and [r["name"] for r in report["rows"]][-1] == "srm"
    assert png.name == "ab_ctr.png" and png.stat().st_size > 1000
    text = md.read_text()
    assert "| ctl (control) | 50 | 2 | 2 | 5 | 1 | 0.2000 | [0.0362, 0.6245] |" in text
    assert "+185.7 %" in text and "→ pass" in text and "![CTR" in text


@pytest.mark.timeout(10)
def test_markdown_flags_an_srm_failure(tmp_path):
    experiment = experiment_of(ServeSettings.from_yaml(write_config(tmp_path)), "exp")
    readout = build_readout(normalise_rows(HAND_LOG)[0], experiment, ReadoutOptions(srm_alpha=0.9))
    assert "FAIL: sample ratio mismatch" in readout_markdown(readout)
