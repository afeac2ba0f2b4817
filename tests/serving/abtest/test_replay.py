"""Offline replay: held-out files in both shapes, HR/NDCG of exposed lists by hand."""

from __future__ import annotations

import json
import math

import pytest

from serving.abtest.replay import read_next_items, replay_metrics


@pytest.mark.timeout(10)
def test_read_next_items_from_an_event_log_and_a_split_folder(tmp_path):
    events = tmp_path / "next.jsonl"
    events.write_text('{"user_id": 1, "item_id": "5"}\n\n{"user_id": "1", "item_id": "6"}\n')
    assert read_next_items(events) == {"1": ["5", "6"]}
    split = tmp_path / "split"
    split.mkdir()
    (split / "test.jsonl").write_text(json.dumps({"sample_id": "2:4", "user_id": "2", "history": ["1"],
                                                  "target": "9"}) + "\n")
    assert read_next_items(split) == {"2": ["9"]}
    events.write_text('{"user": 1}\n')
    with pytest.raises(ValueError, match="next.jsonl:1"):
        read_next_items(events)


@pytest.mark.timeout(10)
def test_replay_metrics_by_hand():
    lists = {"a": ["x", "y", "z"], "b": ["y"], "c": ["q"]}
    next_items = {"a": ["y", "w"], "b": ["y"], "d": ["x"]}
    # samples: a/y rank 1, a/w miss, b/y rank 0 -> hr@2 = 2/3; ndcg@2 = (1/log2(3) + 0 + 1) / 3
    got = replay_metrics(lists, next_items, ks=(1, 2))
    assert got["hr@2"] == pytest.approx(2 / 3) and got["hr@1"] == pytest.approx(1 / 3)
    assert got["ndcg@2"] == pytest.approx((1 / math.log2(3) + 1) / 3)
    assert (got["replay_samples"], got["replay_users"]) == (3, 2)
    assert replay_metrics(lists, {"zz": ["x"]}) == {}
