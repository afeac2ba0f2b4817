"""The nearline job's logic on a real Redis with a fake reasoner: selection, plans, checkpoints, resume."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from feature_store.checkpoints import JobCheckpoints
from feature_store.errors import StoreError
from feature_store.materialize import materialize_histories
from feature_store.nearline import NearlineSettings, needs_cot, plan_job, run_job, select_users
from feature_store.schema import decode_history, history_sha

pytestmark = pytest.mark.integration
SETTINGS = NearlineSettings(chunk_size=3)


def fake_reasoner(batch: dict) -> dict:
    """Deterministic stand-in for the vLLM reasoner: the CoT names the history, the answer is its last item."""
    histories = [decode_history(str(h)) for h in batch["history"]]
    return {**batch,
            "cot": np.array([f"saw {' '.join(h)}" for h in histories], dtype=object),
            "answer": np.array([json.dumps(h[-1:]) for h in histories], dtype=object),
            "closed": np.array([len(h) % 2 == 0 for h in histories]),
            "cot_tokens": np.array([len(h) + 1 for h in histories])}


def fake_runner(bundle_dir, settings, rows, crash_after: int | None = None):
    for n, start in enumerate(range(0, len(rows), 2)):  # batches that straddle chunks on purpose
        if crash_after is not None and n == crash_after:
            raise KeyboardInterrupt("killed")
        part = rows[start:start + 2]
        yield fake_reasoner({key: np.array([r[key] for r in part], dtype=object) for key in part[0]})


def load_users(store, n: int = 10) -> None:
    materialize_histories(store, [(f"u{i:02d}", [str(j) for j in range(i % 4 + 1)]) for i in range(n)], 10.0)


def contents(store) -> dict[str, dict]:
    users = sorted(store.scan_users())
    return dict(zip(users, store.read(users), strict=True))


def run(store, job_id="j1", runner=fake_runner, users="changed"):
    return run_job(store, "unused", job_id, users, runner, SETTINGS, progress=False, model_version="v1")


@pytest.mark.timeout(20)
def test_a_job_writes_every_selected_user_and_then_nothing_is_left_to_do(store):
    load_users(store)
    summary = run(store)
    assert (summary.users, summary.chunks, summary.written) == (10, 4, 10)
    rows = contents(store)
    assert rows["u03"]["cot"] == "saw 0 1 2 3" and json.loads(rows["u03"]["answer"]) == ["3"]
    assert all(row["model_version"] == "v1" and row["job_id"] == "j1" for row in rows.values())
    assert not any(needs_cot(row) for row in rows.values())
    assert select_users(store, "changed") == [] and len(select_users(store, "all")) == 10
    assert summary.unclosed_rate == pytest.approx(0.5)
    assert JobCheckpoints(store, "j1").finished()


@pytest.mark.timeout(20)
def test_changed_selects_only_users_whose_history_moved_since_their_cot(store, tmp_path):
    load_users(store)
    run(store)
    materialize_histories(store, [("u01", ["0", "9"]), ("new", ["5"])], updated_at=time.time())
    assert select_users(store, "changed") == ["new", "u01"]
    ids = tmp_path / "ids.txt"
    ids.write_text("u05\n\nu02\nu05\n")
    assert select_users(store, str(ids)) == ["u02", "u05"]
    with pytest.raises(ValueError, match="changed"):
        select_users(store, str(tmp_path / "missing.txt"))
    assert run(store, "j2").users == 2
    assert contents(store)["u01"]["cot_history_sha"] == history_sha(["0", "9"])


@pytest.mark.timeout(20)
def test_a_crashed_job_resumes_from_its_checkpoints_and_ends_identical(store, redis_url):
    from feature_store.store import FeatureStore

    load_users(store)
    reference = FeatureStore(redis_url, namespace="ref")
    load_users(reference)
    run(reference)

    with pytest.raises(KeyboardInterrupt):
        run(store, runner=lambda *a: fake_runner(*a, crash_after=3))
    done = JobCheckpoints(store, "j1").done()
    assert done and len(done) < 4  # 3 batches of 2 rows finished chunk 0 (rows 0-2) and chunk 1 (rows 3-5)
    assert done == {0, 1}
    resumed = run(store)
    assert (resumed.chunks_skipped, resumed.users) == (2, 4)
    ours, theirs = contents(store), contents(reference)
    assert ours.keys() == theirs.keys()
    updated = {row["updated_at"] for row in ours.values()}
    assert len(updated) == 1  # one timestamp for the whole job, also after the restart
    for user in ours:
        assert {k: v for k, v in ours[user].items() if k != "updated_at"} == \
               {k: v for k, v in theirs[user].items() if k != "updated_at"}, user


@pytest.mark.timeout(20)
def test_a_job_id_keeps_its_plan_and_refuses_other_settings(store):
    load_users(store, 6)
    first = plan_job(store, "j", "v1", "all", SETTINGS, now=lambda: 5.0)
    load_users(store, 9)
    again = plan_job(store, "j", "v1", "all", SETTINGS, now=lambda: 99.0)
    assert again == first and again.updated_at == 5.0 and again.n_users == 6
    with pytest.raises(StoreError, match="new --job-id"):
        plan_job(store, "j", "v2", "all", SETTINGS)
    with pytest.raises(StoreError, match="new --job-id"):
        plan_job(store, "j", "v1", "all", NearlineSettings(chunk_size=4))


@pytest.mark.timeout(20)
def test_a_runner_that_stops_early_is_reported_not_finished(store):
    load_users(store)

    def short(bundle_dir, settings, rows):
        yield from list(fake_runner(bundle_dir, settings, rows))[:1]

    with pytest.raises(RuntimeError, match="same --job-id"):
        run(store, runner=short)
    assert not JobCheckpoints(store, "j1").finished()
    again = run(store)  # the first batch finished no chunk: every user is redone, the 2 written rows are no-ops
    assert (again.users, again.written, again.stale) == (10, 8, 2)


@pytest.mark.timeout(20)
def test_the_queue_spec_takes_the_users_serving_queued_and_empties_the_queue(store):
    from feature_store.schema import queue_key

    load_users(store)
    store.client.sadd(queue_key("t"), "u02", "u07", "ghost")  # ghost has no history: nothing to reason on
    assert select_users(store, "queue") == ["u02", "u07"]
    summary = run(store, users="queue")
    assert summary.users == 2 and set(contents(store)) >= {"u02", "u07"}
    assert store.client.smembers(queue_key("t")) == {"ghost"}
