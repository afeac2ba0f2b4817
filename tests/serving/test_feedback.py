"""The feedback log: durable JSONL (fsync'ed, torn lines survived), idempotent by (request_id, item_id, event),
and the Redis stream backend."""

from __future__ import annotations

import json
import time

import pytest

from feature_store.store import FeatureStore
from serving.errors import DependencyUnavailable
from serving.feedback import (
    DedupeWindow,
    JsonlFeedbackLog,
    RedisFeedbackLog,
    build_feedback_log,
    dedupe_key,
    read_jsonl,
)
from tests.serving.fakes import dead_redis_url

NOW = time.time()


def row(item: str = "3", event: str = "click", request_id: str | None = "r1", arm: str = "direct",
        received_at: float = NOW) -> dict:
    return {"ts": 1.5, "received_at": received_at, "user_id": "u1", "item_id": item, "event": event,
            "request_id": request_id, "arm": arm}


@pytest.mark.timeout(10)
def test_jsonl_appends_one_line_per_event_and_dedupes_across_restarts(tmp_path):
    path = tmp_path / "logs" / "feedback.jsonl"
    log = JsonlFeedbackLog(path)
    assert log.append([row(), row(event="exposure"), row()]) == [True, True, False]  # a repeat inside one call
    assert log.append([row(request_id=None), row(request_id=None)]) == [True, True]  # no request_id: no dedupe
    log.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[0]) == row()
    reopened = JsonlFeedbackLog(path)  # the dedupe keys come back from the file
    assert reopened.append([row(), row(item="4")]) == [False, True]
    assert reopened.describe()["dedupe_keys"] == 3
    reopened.close()
    assert [r["item_id"] for r in read_jsonl(path)] == ["3", "3", "3", "3", "4"]


@pytest.mark.timeout(10)
def test_a_torn_last_line_is_skipped_and_the_next_write_starts_fresh(tmp_path):
    path = tmp_path / "feedback.jsonl"
    path.write_text(json.dumps(row()) + "\n" + '{"ts": 1, "item_')  # a crash in the middle of a write
    log = JsonlFeedbackLog(path)
    assert log.append([row()]) == [False]
    assert log.append([row(item="9")]) == [True]
    log.close()
    assert [r["item_id"] for r in read_jsonl(path)] == ["3", "9"]


@pytest.mark.timeout(10)
def test_jsonl_write_failure_is_a_dependency_error(tmp_path):
    log = JsonlFeedbackLog(tmp_path / "feedback.jsonl")
    log._file.close()
    log._file = open(tmp_path / "feedback.jsonl", "rb")  # noqa: SIM115 - a file that refuses writes
    with pytest.raises(DependencyUnavailable, match="feedback log unavailable"):
        log.append([row()])
    log.close()


@pytest.mark.timeout(10)
def test_dedupe_key():
    assert dedupe_key(row(request_id=None)) is None
    assert dedupe_key(row()) != dedupe_key(row(event="exposure")) != dedupe_key(row(item="4"))


@pytest.mark.integration
@pytest.mark.timeout(20)
def test_redis_stream_backend(redis_url):
    with FeatureStore(redis_url, namespace="t", timeout_s=0.5, retries=0) as store:
        log = build_feedback_log("redis", store)
        assert isinstance(log, RedisFeedbackLog)
        assert log.append([row(), row(), row(request_id=None)]) == [True, False, True]
        assert log.append([row()]) == [False]
        entries = log.read_all()
        assert [(e["item_id"], e["request_id"], e["ts"]) for e in entries] == [("3", "r1", "1.5"), ("3", "", "1.5")]
        seen = log.seen_key(row())
        assert seen.startswith("t:feedback:seen:") and 0 < store.client.ttl(seen) <= 7 * 86400
        assert log.seen_key(row(request_id=None)) is None
        assert store.client.exists("t:feedback:seen") == 0  # no ever-growing set
    with FeatureStore(dead_redis_url(), namespace="t", timeout_s=0.2, retries=0) as dead:
        with pytest.raises(DependencyUnavailable, match="feedback log unavailable"):
            RedisFeedbackLog(dead).append([row()])


@pytest.mark.timeout(10)
def test_dedupe_window_evicts_by_receive_time():
    window = DedupeWindow(ttl_s=10)
    window.add("a", 100.0)
    window.add("b", 105.0)
    window.add("c", 103.0)  # a clock step back: kept at 105 so the order stays by time
    window.evict(110.0)  # horizon 100: "a" (100) stays
    assert ("a" in window, len(window)) == (True, 3)
    window.evict(110.5)  # horizon 100.5: "a" goes, "b" and "c" (105) stay
    assert ("a" in window, "b" in window, "c" in window) == (False, True, True)
    window.evict(200.0)
    assert len(window) == 0


@pytest.mark.timeout(10)
def test_jsonl_dedupe_keys_are_bounded_by_the_window(tmp_path):
    path = tmp_path / "feedback.jsonl"
    log = JsonlFeedbackLog(path, dedupe_ttl_s=3600)
    old = NOW - 7200  # received two hours ago: outside a one-hour window
    assert log.append([row(request_id="old", received_at=old), row(request_id="new")]) == [True, True]
    assert log.append([row(request_id="new")]) == [False]
    assert log.describe()["dedupe_keys"] == 1  # the old key was evicted at the start of that append
    log.close()
    reopened = JsonlFeedbackLog(path, dedupe_ttl_s=3600)  # only the last window's keys are loaded
    assert reopened.describe()["dedupe_keys"] == 1
    assert reopened.append([row(request_id="old", received_at=NOW), row(request_id="new")]) == [True, False]
    reopened.close()
