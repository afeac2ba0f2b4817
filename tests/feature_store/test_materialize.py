"""Bulk writes, histories from the project's own split files and from feedback events."""

from __future__ import annotations

import json

import pytest

from feature_store.errors import StoreError
from feature_store.materialize import (
    histories_from_events,
    histories_from_split,
    latest_event_ts,
    materialize,
    materialize_histories,
    read_histories,
)
from feature_store.schema import SCHEMA_VERSION, decode_history, schema_key
from feature_store.store import WriteResult
from training.data.split import build_split
from training.data.store import write_split


@pytest.fixture
def split_dir(tmp_path, tiny_dataset):
    """The tiny dataset (30 users x 8 items) split 8:1:1 in time and written by the project's split writer."""
    folder = tmp_path / "split"
    write_split(build_split(tiny_dataset), folder)
    return folder


def walk(user: int, steps: int) -> list[str]:
    """What tiny_dataset's user `user` watched in its first `steps` steps."""
    return [str((user % 12 + step) % 12 + 1) for step in range(steps)]


@pytest.mark.timeout(30)
def test_histories_from_split_are_chronological(split_dir):
    train = dict(histories_from_split(split_dir))
    assert list(train) == [str(u) for u in range(1, 31)]  # numeric id order
    # 240 interactions, 192 in train: steps 0-5 of everyone, step 6 of users 1-12 (ts = 1000 * step + user)
    assert train["1"] == walk(1, 7) and train["12"] == walk(12, 7) and train["13"] == walk(13, 6)
    full = dict(histories_from_split(split_dir, part="full"))
    assert all(full[str(u)] == walk(u, 8) for u in range(1, 31))
    with pytest.raises(StoreError):
        list(histories_from_split(split_dir, part="valid"))


@pytest.mark.integration
@pytest.mark.timeout(30)
def test_materialize_histories_from_split_is_idempotent(store, split_dir):
    histories = list(histories_from_split(split_dir))
    assert materialize_histories(store, histories, updated_at=50.0, chunk_size=7, progress=True) == WriteResult(30, 0)
    assert materialize_histories(store, histories, updated_at=50.0) == WriteResult(0, 30)
    assert store.client.get(schema_key("t")) == str(SCHEMA_VERSION)
    stored = store.read(["1", "13"], ("history",))
    assert [decode_history(r["history"]) for r in stored] == [walk(1, 7), walk(13, 6)]


@pytest.mark.integration
@pytest.mark.timeout(30)
def test_materialize_any_fields_from_a_generator(store):
    rows = ((str(u), {"cot": f"thought {u}", "answer": str(u + 1)}) for u in range(25))
    assert materialize(store, rows, updated_at=3.0, chunk_size=10) == WriteResult(25, 0)
    assert store.read(["24"], ("cot", "answer")) == [{"cot": "thought 24", "answer": "25"}]
    with pytest.raises(StoreError):
        materialize(store, [("u", {"cot": "c"})], updated_at=1.0, chunk_size=0)


def write_events(path, events) -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))


@pytest.mark.integration
@pytest.mark.timeout(30)
def test_events_append_to_stored_histories_in_time_order(store, tmp_path):
    materialize_histories(store, [("1", ["10", "11"]), ("2", ["20"])], updated_at=1.0)
    path = tmp_path / "events.jsonl"
    write_events(path, [{"user_id": "1", "item_id": "13", "ts": 30}, {"user_id": 3, "item_id": 31, "ts": 5},
                        {"user_id": "1", "item_id": "12", "ts": 20}, {"user_id": "1", "item_id": "14", "ts": 30}])
    histories = dict(histories_from_events(path, store=store))
    # user 2 has no events; events with equal ts keep their file order
    assert histories == {"1": ["10", "11", "12", "13", "14"], "3": ["31"]}
    assert latest_event_ts(path) == 30.0
    assert materialize_histories(store, histories.items(), updated_at=latest_event_ts(path)) == WriteResult(2, 0)
    again = dict(histories_from_events(path, store=store))  # the same file again appends twice, but at the same
    assert materialize_histories(store, again.items(), updated_at=latest_event_ts(path)) == WriteResult(0, 2)  # ts
    assert read_histories(store, ["1", "2", "3", "4"]) == {"1": ["10", "11", "12", "13", "14"], "2": ["20"],
                                                           "3": ["31"]}


@pytest.mark.timeout(30)
def test_events_with_a_base_mapping_and_bad_files(tmp_path):
    path = tmp_path / "events.jsonl"
    write_events(path, [{"user_id": "1", "item_id": "5", "ts": 1.5}])
    assert list(histories_from_events(path, base={"1": ["4"]})) == [("1", ["4", "5"])]
    assert list(histories_from_events(path)) == [("1", ["5"])]
    for bad in ('{"user_id": "1", "item_id": "5"}\n', "not json\n", '{"user_id": "1", "item_id": "5", "ts": "x"}\n'):
        path.write_text(bad)
        with pytest.raises(StoreError, match="events.jsonl:1"):
            list(histories_from_events(path))
    path.write_text("\n")
    assert latest_event_ts(path) is None
    with pytest.raises(StoreError):
        list(histories_from_events(path, base={}, store=object()))
