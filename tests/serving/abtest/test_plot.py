"""The CTR plot: a PNG when some arm has exposures, None otherwise."""

from __future__ import annotations

import pytest

from serving.abtest.events import normalise_rows
from serving.abtest.plot import plot_ctr
from serving.abtest.readout import build_readout, experiment_of
from serving.settings import ServeSettings
from tests.serving.abtest.logs import HAND_LOG, write_config


@pytest.mark.timeout(30)
def test_plot_ctr(tmp_path):
    experiment = experiment_of(ServeSettings.from_yaml(write_config(tmp_path)), "exp")
    png = plot_ctr(build_readout(normalise_rows(HAND_LOG)[0], experiment), tmp_path / "p" / "ctr.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_ctr(build_readout([], experiment), tmp_path / "empty.png") is None
