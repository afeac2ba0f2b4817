"""The readout of the hand log: CTR, Wilson, lift, SRM, replay (numbers worked out by hand)."""

from __future__ import annotations

import math

import pytest

from serving.abtest.events import normalise_rows
from serving.abtest.readout import ReadoutOptions, build_readout, control_of, experiment_of
from serving.abtest.replay import read_next_items
from serving.abtest.stats import wilson_interval
from serving.settings import ServeSettings
from tests.serving.abtest.logs import HAND_LOG, NEXT_ITEMS, write_config, write_jsonl


@pytest.fixture
def experiment(tmp_path):
    return experiment_of(ServeSettings.from_yaml(write_config(tmp_path)), "exp")


@pytest.mark.timeout(10)
def test_readout_of_the_hand_log(experiment, tmp_path):
    events, dropped = normalise_rows(HAND_LOG)
    next_items = read_next_items(write_jsonl(tmp_path / "next.jsonl", NEXT_ITEMS))
    readout = build_readout(events, experiment, ReadoutOptions(ks=(2,)), next_items, dropped)
    ctl, trt = readout.arm("ctl"), readout.arm("trt")
    assert readout.control == "ctl" and readout.dropped_rows == 1 and readout.events == 19
    assert (ctl.ctr, ctl.ctr_ci) == (0.2, wilson_interval(1, 5))
    assert trt.ctr == pytest.approx(4 / 7)
    assert ctl.lift is None and trt.lift.lift == pytest.approx((4 / 7) / 0.2 - 1)  # +185.7 %
    # SRM over ctl, trt (forced has weight 0): first users 2, 3 vs 2.5, 2.5 -> chi2 = 2 * 0.25 / 2.5 = 0.2,
    # p = erfc(sqrt(0.1)) = 0.654721
    srm = readout.srm
    assert srm.counts == {"ctl": 2, "trt": 3} and srm.untested == {"forced": 0}
    assert (srm.chi2, srm.dof) == (pytest.approx(0.2), 1) and srm.p_value == pytest.approx(0.654721, abs=1e-6)
    assert srm.passed
    # replay, k = 2: ctl u1 [i1, i2, i3] vs i2 -> rank 1: hr 1, ndcg 1/log2(3)
    assert ctl.replay == {"hr@2": 1.0, "ndcg@2": pytest.approx(1 / math.log2(3)), "replay_samples": 1,
                          "replay_users": 1}
    # trt: u3 [i4, i5] vs i5 (rank 1) and i8 (miss), u4 [i1, i4] vs i6 (miss), u1 [i9] vs i2 (miss)
    assert trt.replay["hr@2"] == 0.25 and trt.replay["ndcg@2"] == pytest.approx(0.25 / math.log2(3))
    assert (trt.replay["replay_samples"], trt.replay["replay_users"]) == (4, 3)
    assert readout.arm("forced").exposures == 0 and math.isnan(readout.arm("forced").ctr)


@pytest.mark.timeout(10)
def test_control_override_bootstrap_and_srm_failure(experiment):
    events, _ = normalise_rows(HAND_LOG)
    readout = build_readout(events, experiment, ReadoutOptions(control="trt", bootstrap=50, srm_alpha=0.7))
    assert readout.control == "trt" and readout.arm("trt").lift is None
    assert readout.arm("ctl").lift.lift == pytest.approx(0.2 / (4 / 7) - 1)
    assert readout.arm("ctl").lift_bootstrap is not None
    assert not readout.srm.passed  # p 0.65 < alpha 0.7


@pytest.mark.timeout(10)
def test_unknown_experiment_and_control_are_refused(experiment, tmp_path):
    with pytest.raises(ValueError, match="known: \\['exp'\\]"):
        experiment_of(ServeSettings.from_yaml(write_config(tmp_path)), "nope")
    with pytest.raises(ValueError, match="arms: \\['ctl', 'trt', 'forced'\\]"):
        control_of(experiment, "nope")
