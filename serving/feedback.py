"""The exposure/click log: durable, append-only, idempotent (DESIGN.md §6: the arm of every event is logged).

Two backends, chosen by `feedback_log` in the serve settings (`build_feedback_log`):

- a JSONL path: one JSON object per event and line; each call's events are written together, then flushed and
  fsync'ed before the call returns, so an acknowledged event survives a crash. A torn last line (a crash in the
  middle of a write) is skipped when the file is read back, and the next write starts on a fresh line.
- "redis": `XADD <ns>:feedback` (a Redis stream; as durable as the Redis server's persistence settings).

A row: ts (the client's, else the receive time), received_at, user_id, item_id, event, request_id (or null), arm.

Idempotency: an event with a request_id is logged once per (request_id, item_id, event) within the dedupe window
(`dedupe_ttl_s`, 7 days by the server's receive time); a retry of it inside the window is acknowledged as a
duplicate and not written again. Events without a request_id are always logged. Memory is bounded by the events
of one window, not by the log: the JSONL backend keeps the window's keys in memory (oldest evicted as time passes;
loaded from the file's last window at start; one process per file: several writers would not see each other's
keys); the Redis backend sets one key per event, `<ns>:feedback:seen:<sha1>`, with `SET NX EX` in the same Lua
script as the XADD, so each key expires on its own.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from feature_store.errors import StoreUnavailable
from feature_store.store import FeatureStore
from serving.errors import DependencyUnavailable

FEEDBACK_FIELDS = ("ts", "received_at", "user_id", "item_id", "event", "request_id", "arm")
DEDUPE_TTL_S = 7 * 86400
log = logging.getLogger(__name__)

# KEYS[1] stream, KEYS[2] the event's dedupe key (or the stream again when the event has none); ARGV[1] "1" when
# the event has a dedupe key, ARGV[2] its TTL, ARGV[3..] field/value pairs. Returns 1 when added, 0 for a duplicate.
XADD_ONCE_LUA = """
if ARGV[1] == '1' then
  if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then return 0 end
end
redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
return 1
"""


class FeedbackLog(Protocol):
    def append(self, rows: Sequence[dict]) -> list[bool]:
        """Log rows (dicts of FEEDBACK_FIELDS); per row: True when logged now, False for a duplicate.
        DependencyUnavailable when the log cannot be written (nothing acknowledged)."""
        ...

    def describe(self) -> dict: ...

    def close(self) -> None: ...


def dedupe_key(row: dict) -> str | None:
    """(request_id, item_id, event) as one string; None when the event has no request_id."""
    if not row.get("request_id"):
        return None
    return json.dumps([row["request_id"], row["item_id"], row["event"]], separators=(",", ":"))


class DedupeWindow:
    """Dedupe keys seen in the last `ttl_s` seconds (by receive time), oldest evicted first."""

    def __init__(self, ttl_s: float):
        self.ttl_s = ttl_s
        self._keys: dict[str, float] = {}  # insertion order = receive order (times only grow, see `add`)

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: str, received_at: float) -> None:
        newest = next(reversed(self._keys.values()), received_at)
        self._keys.pop(key, None)
        self._keys[key] = max(received_at, newest)  # a clock step back never reorders the window

    def evict(self, now: float) -> None:
        """Drop the keys received more than ttl_s before `now`."""
        horizon = now - self.ttl_s
        while self._keys:
            key, at = next(iter(self._keys.items()))
            if at >= horizon:
                return
            del self._keys[key]


class JsonlFeedbackLog:
    """Appends rows to a JSONL file (flush + fsync per call); thread-safe."""

    def __init__(self, path: str | Path, dedupe_ttl_s: float = DEDUPE_TTL_S):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._seen = DedupeWindow(dedupe_ttl_s)
        for row in read_jsonl(self.path):
            if (key := dedupe_key(row)) is not None:
                self._seen.add(key, _received_at(row))
        self._seen.evict(time.time())
        self._file = open(self.path, "ab")  # noqa: SIM115 - held open for the life of the log
        self._needs_newline = _ends_without_newline(self.path)

    def append(self, rows: Sequence[dict]) -> list[bool]:
        with self._lock:
            self._seen.evict(time.time())
            flags, fresh, keys = [], [], {}
            for row in rows:
                key = dedupe_key(row)
                new = key is None or (key not in self._seen and key not in keys)
                flags.append(new)
                if new:
                    fresh.append(row)
                    if key is not None:
                        keys[key] = _received_at(row)
            if fresh:
                self._write(fresh)
            for key, received_at in keys.items():
                self._seen.add(key, received_at)
            return flags

    def _write(self, rows: list[dict]) -> None:
        text = "".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n" for row in rows)
        data = (b"\n" if self._needs_newline else b"") + text.encode()
        try:
            self._file.write(data)
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as err:
            raise DependencyUnavailable("feedback log", f"cannot append to {self.path.name}: {err.strerror}") from None
        self._needs_newline = False

    def describe(self) -> dict:
        return {"backend": "jsonl", "path": str(self.path), "dedupe_keys": len(self._seen)}

    def close(self) -> None:
        with self._lock:
            self._file.close()


class RedisFeedbackLog:
    """XADDs rows to the stream `<ns>:feedback`, once per dedupe key (one Lua script per row, pipelined)."""

    def __init__(self, store: FeatureStore, dedupe_ttl_s: int = DEDUPE_TTL_S):
        self.store, self.dedupe_ttl_s = store, dedupe_ttl_s
        self.stream, self.seen_prefix = f"{store.namespace}:feedback", f"{store.namespace}:feedback:seen:"
        self._script = store.client.register_script(XADD_ONCE_LUA)

    def seen_key(self, row: dict) -> str | None:
        """The Redis key that marks the row's event as logged (None without a request_id)."""
        key = dedupe_key(row)
        return None if key is None else self.seen_prefix + hashlib.sha1(key.encode()).hexdigest()

    def append(self, rows: Sequence[dict]) -> list[bool]:
        def run() -> list:
            pipe = self.store.client.pipeline(transaction=False)
            for row in rows:
                pairs = [part for name in FEEDBACK_FIELDS for part in (name, _text(row.get(name)))]
                seen = self.seen_key(row)
                self._script(keys=[self.stream, seen or self.stream],
                             args=["1" if seen else "0", self.dedupe_ttl_s, *pairs], client=pipe)
            return pipe.execute()

        try:
            return [bool(int(flag)) for flag in self.store.with_retries(f"XADD of {len(rows)} events", run)]
        except StoreUnavailable as err:
            raise DependencyUnavailable("feedback log", str(err)) from None

    def read_all(self) -> list[dict]:
        """Every logged row, oldest first (XRANGE; tests and offline jobs)."""
        entries = self.store.with_retries("XRANGE feedback", lambda: self.store.client.xrange(self.stream))
        return [fields for _, fields in entries]

    def describe(self) -> dict:
        return {"backend": "redis", "stream": self.stream}

    def close(self) -> None:
        """Nothing to release: the store belongs to the caller."""


def build_feedback_log(target: str, store: FeatureStore) -> FeedbackLog:
    """settings.feedback_log -> its backend: "redis" for the stream, anything else is a JSONL path."""
    return RedisFeedbackLog(store) if target == "redis" else JsonlFeedbackLog(target)


def read_jsonl(path: str | Path) -> Iterable[dict]:
    """Rows of a feedback JSONL file; lines that are not a JSON object (a torn last line) are skipped."""
    path = Path(path)
    if not path.is_file():
        return
    with open(path, encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                log.warning("%s:%d: skipping a line that is not JSON", path, number)
                continue
            if isinstance(row, dict):
                yield row


def _received_at(row: dict) -> float:
    """The row's receive time (its client ts when older rows lack one; 0 when neither is a number)."""
    for name in ("received_at", "ts"):
        value = row.get(name)
        if isinstance(value, int | float):
            return float(value)
    return 0.0


def _ends_without_newline(path: Path) -> bool:
    size = path.stat().st_size
    if size == 0:
        return False
    with open(path, "rb") as f:
        f.seek(size - 1)
        return f.read(1) != b"\n"


def _text(value: object) -> str:
    """A stream field value: "" for None, repr for floats (exact), str otherwise."""
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)
