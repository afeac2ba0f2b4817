"""Bulk writers: any per-user features in pipelined chunks, and user histories from split files or events.

`materialize` writes rows `(user_id, {field: value})` at one `updated_at`, so
rerunning the same load is a no-op (newer-wins guard). Histories are item ids,
oldest first, written as the `history` field (schema.encode_history).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from itertools import islice
from pathlib import Path

from tqdm import tqdm

from feature_store.errors import StoreError
from feature_store.schema import UserFeatures, decode_history, encode_history
from feature_store.store import FeatureStore, WriteResult
from training.catalog import id_sort_key
from training.data.store import load_split

SPLIT_PARTS = ("train", "full")
EVENT_KEYS = ("user_id", "item_id", "ts")


def materialize(store: FeatureStore, rows: Iterable[tuple[str, Mapping[str, str]]], updated_at: float,
                chunk_size: int = 1000, progress: bool = False) -> WriteResult:
    """Write `(user_id, fields)` rows at `updated_at`, `chunk_size` rows per pipeline; checks the schema first."""
    if chunk_size < 1:
        raise StoreError(f"chunk_size must be >= 1, got {chunk_size}")
    store.ensure_schema()
    total = len(rows) if isinstance(rows, Sized) else None
    result = WriteResult()
    iterator = iter(rows)
    with tqdm(total=total, disable=not progress, unit="user", desc=f"redis {store.namespace}") as bar:
        while chunk := list(islice(iterator, chunk_size)):
            result += store.write([UserFeatures(user_id, updated_at, fields) for user_id, fields in chunk])
            bar.update(len(chunk))
    return result


def histories_from_split(split_dir: Path, part: str = "train") -> Iterator[tuple[str, list[str]]]:
    """(user_id, item ids oldest first) per user of a split folder written by training.data.store.write_split.

    part "train": the interactions of the training part (what models were trained on; users without one are
    skipped); "full": every interaction of the split. Users come in id order; the folder is hash-checked.
    """
    if part not in SPLIT_PARTS:
        raise StoreError(f"part must be one of {SPLIT_PARTS}, got {part!r}")
    split = load_split(Path(split_dir))
    sequences = split.train_sequences if part == "train" else split.sequences
    for user_id in sorted(sequences, key=id_sort_key):
        if sequences[user_id]:
            yield user_id, list(sequences[user_id])


def read_events(path: Path) -> list[dict]:
    """Feedback events of a JSONL file (`{"user_id", "item_id", "ts"}` per line), stably sorted by ts."""
    events = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if line.strip():
            events.append(_parse_event(line, f"{path}:{number}"))
    return sorted(events, key=lambda e: e["ts"])


def _parse_event(line: str, where: str) -> dict:
    try:
        event = json.loads(line)
    except json.JSONDecodeError as exc:
        raise StoreError(f"{where}: not JSON ({exc})") from exc
    if not isinstance(event, dict) or any(k not in event for k in EVENT_KEYS):
        raise StoreError(f"{where}: an event needs {list(EVENT_KEYS)}")
    if isinstance(event["ts"], bool) or not isinstance(event["ts"], int | float):
        raise StoreError(f"{where}: ts must be a number, got {event['ts']!r}")
    return {"user_id": str(event["user_id"]), "item_id": str(event["item_id"]), "ts": event["ts"]}


def histories_from_events(path: Path, base: Mapping[str, Sequence[str]] | None = None,
                          store: FeatureStore | None = None) -> Iterator[tuple[str, list[str]]]:
    """(user_id, history + new items by ts) for each user with events in the JSONL file `path`.

    The history each user's events are appended to comes from `base`, else from the store's `history`
    field, else is empty. Appending is not idempotent: write the result at the latest event ts (see
    `latest_event_ts`), so that reapplying the same file is a newer-wins no-op.
    """
    if base is not None and store is not None:
        raise StoreError("give the base histories either as `base` or from `store`, not both")
    events = read_events(path)
    appended: dict[str, list[str]] = {}
    for event in events:
        appended.setdefault(event["user_id"], []).append(event["item_id"])
    users = sorted(appended, key=id_sort_key)
    start = read_histories(store, users) if store is not None else dict(base or {})
    for user_id in users:
        yield user_id, [*start.get(user_id, []), *appended[user_id]]


def latest_event_ts(path: Path) -> float | None:
    """The largest ts of an events file, None when it has no events."""
    events = read_events(path)
    return float(events[-1]["ts"]) if events else None


def read_histories(store: FeatureStore, user_ids: Sequence[str]) -> dict[str, list[str]]:
    """Stored histories of `user_ids` (users without one are left out)."""
    rows = store.read(list(user_ids), ("history",))
    return {u: decode_history(r["history"]) for u, r in zip(user_ids, rows, strict=True) if r and "history" in r}


def materialize_histories(store: FeatureStore, histories: Iterable[tuple[str, Sequence[str]]], updated_at: float,
                          chunk_size: int = 1000, progress: bool = False) -> WriteResult:
    """Write each user's `history` field (encode_history) at `updated_at`."""
    rows = ((user_id, {"history": encode_history(items)}) for user_id, items in histories)
    return materialize(store, rows, updated_at, chunk_size=chunk_size, progress=progress)
