"""The feedback log as the readout sees it: rows of one or more sources, normalised, oldest first.

A source is a JSONL path (serving/feedback.py's file backend) or "redis" (the `<ns>:feedback` stream, read
with XRANGE through `RedisFeedbackLog.read_all`). Stream fields come back as strings ("" for None), so every
row is normalised to: user_id, item_id, arm (str), event ("exposure" | "click"), request_id (str | None),
ts (float; the received_at time, else 0, when a row has no usable ts). Rows with another event or without a
user, item or arm are dropped and counted. Rows are sorted by ts, stably, so equal times keep log order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from feature_store.store import FeatureStore
from serving.feedback import RedisFeedbackLog, read_jsonl

EVENTS = ("exposure", "click")


@dataclass(frozen=True)
class Event:
    user_id: str
    item_id: str
    event: str
    request_id: str | None
    arm: str
    ts: float


def _time(*values: object) -> float:
    for value in values:
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            return number
    return 0.0


def normalise(row: dict) -> Event | None:
    """One logged row -> an Event; None when it is not a usable exposure or click."""
    fields = {key: str(row.get(key) or "") for key in ("user_id", "item_id", "event", "arm", "request_id")}
    if fields["event"] not in EVENTS or not (fields["user_id"] and fields["item_id"] and fields["arm"]):
        return None
    return Event(fields["user_id"], fields["item_id"], fields["event"], fields["request_id"] or None,
                 fields["arm"], _time(row.get("ts"), row.get("received_at")))


def normalise_rows(rows: Iterable[dict]) -> tuple[list[Event], int]:
    """(events sorted by ts, stable; number of rows dropped)."""
    events, dropped = [], 0
    for row in rows:
        event = normalise(row)
        if event is None:
            dropped += 1
        else:
            events.append(event)
    events.sort(key=lambda e: e.ts)
    return events, dropped


def read_rows(sources: Sequence[str | Path], store: FeatureStore | None = None) -> list[dict]:
    """The raw rows of every source in order; "redis" needs `store` (StoreUnavailable when Redis is down)."""
    rows: list[dict] = []
    for source in sources:
        if str(source) == "redis":
            if store is None:
                raise ValueError('the source "redis" needs a feature store')
            rows.extend(RedisFeedbackLog(store).read_all())
        else:
            if not Path(source).is_file():
                raise FileNotFoundError(f"feedback log {str(source)!r} not found")
            rows.extend(read_jsonl(source))
    return rows
