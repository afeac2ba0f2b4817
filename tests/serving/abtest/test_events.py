"""Feedback rows -> events: JSONL (torn lines skipped), Redis stream strings, bad rows dropped."""

from __future__ import annotations

import pytest

from feature_store.store import FeatureStore
from serving.abtest.events import Event, normalise, normalise_rows, read_rows
from serving.feedback import RedisFeedbackLog
from tests.serving.abtest.logs import HAND_LOG, ev, write_jsonl


@pytest.mark.timeout(10)
def test_stream_strings_are_normalised():
    row = {"ts": "1.5", "received_at": "2.0", "user_id": "7", "item_id": "3", "event": "click",
           "request_id": "", "arm": "direct"}
    assert normalise(row) == Event("7", "3", "click", None, "direct", 1.5)
    assert normalise(row | {"ts": ""}).ts == 2.0  # no client time: the receive time
    assert normalise(row | {"event": "view"}) is None
    assert normalise(row | {"arm": None}) is None


@pytest.mark.timeout(10)
def test_read_rows_of_several_files_skips_a_torn_line(tmp_path):
    first = write_jsonl(tmp_path / "a.jsonl", HAND_LOG[:4], torn_tail='{"ts": 1, "user_')
    second = write_jsonl(tmp_path / "b.jsonl", [ev(0.5, "u9", "i1", "exposure", "r0", "ctl")])
    events, dropped = normalise_rows(read_rows([first, second]))
    assert dropped == 0 and len(events) == 5 and events[0].user_id == "u9"  # sorted by ts
    with pytest.raises(FileNotFoundError):
        read_rows([tmp_path / "missing.jsonl"])
    with pytest.raises(ValueError):
        read_rows(["redis"])


@pytest.mark.integration
@pytest.mark.timeout(20)
def test_read_rows_from_the_redis_stream(redis_url):
    with FeatureStore(redis_url, namespace="ab", timeout_s=0.5, retries=0) as store:
        RedisFeedbackLog(store).append(HAND_LOG[:4])
        events, dropped = normalise_rows(read_rows(["redis"], store))
    assert dropped == 0
    assert [(e.item_id, e.event, e.request_id, e.ts) for e in events][-1] == ("i2", "click", "r1", 2.0)
