"""Per-arm tallies of the hand log (tests/serving/abtest/logs.py)."""

from __future__ import annotations

import pytest

from serving.abtest.aggregate import first_arms, tally
from serving.abtest.events import normalise_rows
from tests.serving.abtest.logs import HAND_LOG


@pytest.mark.timeout(10)
def test_tally_of_the_hand_log():
    events, dropped = normalise_rows(HAND_LOG)
    assert dropped == 1  # the "view" row
    tallies = tally(events, ["ctl", "trt", "forced"])
    ctl, trt, forced = (tallies.arms[name] for name in ("ctl", "trt", "forced"))
    # ctl: u1 3 exposures + 1 click, u2 2 exposures + a click of an unknown request
    assert (ctl.exposures, ctl.clicks, ctl.orphan_clicks) == (5, 1, 1)
    assert (ctl.users, ctl.first_users, ctl.requests) == ({"u1", "u2"}, 2, {"r1", "r2"})
    # trt: u3 2 + u4 3 + u5 1 + u1 1 exposures; clicks u3 2 (+1 repeat), u4 1, u5 1 (no request_id)
    assert (trt.exposures, trt.clicks, trt.orphan_clicks) == (7, 4, 1)
    assert (len(trt.users), trt.first_users, len(trt.requests)) == (4, 3, 4)
    assert trt.user_clicks == {"u3": 2, "u4": 1, "u5": 1}
    assert trt.user_exposures == {"u3": 2, "u4": 3, "u5": 1, "u1": 1}
    assert trt.exposed_lists == {"u3": ["i4", "i5"], "u4": ["i1", "i4"], "u5": ["i7"], "u1": ["i9"]}
    assert forced.exposures == forced.first_users == 0
    assert tallies.other_arm_events == {"old_arm": 1}
    assert tallies.multi_arm_users == 1  # u1


@pytest.mark.timeout(10)
def test_first_arm_is_the_earliest_event_whatever_the_file_order():
    events, _ = normalise_rows(list(reversed(HAND_LOG)))
    assert first_arms(events)["u1"] == "ctl"
