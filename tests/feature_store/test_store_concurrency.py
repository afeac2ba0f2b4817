"""Concurrent writers: whatever the interleaving, each user ends with its newest row."""

from __future__ import annotations

import random
import threading

import pytest

from feature_store.schema import UserFeatures
from feature_store.store import FeatureStore

pytestmark = pytest.mark.integration

N_WRITERS, N_USERS, ROWS_PER_USER_PER_WRITER = 4, 200, 3


def plan_rows(seed: int = 0) -> list[list[UserFeatures]]:
    """Per writer, its rows in a shuffled order; all timestamps of one user are distinct across writers."""
    rng = random.Random(seed)
    plans: list[list[UserFeatures]] = [[] for _ in range(N_WRITERS)]
    for user in range(N_USERS):
        stamps = rng.sample(range(1, 100_000), N_WRITERS * ROWS_PER_USER_PER_WRITER)
        for i, stamp in enumerate(stamps):
            writer = i % N_WRITERS
            at = stamp / 10
            plans[writer].append(UserFeatures(f"u{user}", at, {"answer": f"w{writer}@{at!r}", "job_id": f"w{writer}"}))
    for rows in plans:
        rng.shuffle(rows)
    return plans


def run_writer(url: str, rows: list[UserFeatures], start: threading.Barrier, results: list) -> None:
    with FeatureStore(url, namespace="t") as store:
        start.wait()
        total = None
        for i in range(0, len(rows), 20):
            chunk = store.write(rows[i:i + 20])
            total = chunk if total is None else total + chunk
        results.append(total)


@pytest.mark.timeout(60)
def test_concurrent_writers_leave_the_newest_row_per_user(redis_url):
    plans = plan_rows()
    start, results = threading.Barrier(N_WRITERS), []
    threads = [threading.Thread(target=run_writer, args=(redis_url, rows, start, results)) for rows in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=50)
    assert len(results) == N_WRITERS
    assert sum(r.written + r.stale for r in results) == N_WRITERS * N_USERS * ROWS_PER_USER_PER_WRITER
    newest: dict[str, UserFeatures] = {}
    for row in (r for rows in plans for r in rows):
        if row.user_id not in newest or row.updated_at > newest[row.user_id].updated_at:
            newest[row.user_id] = row
    users = sorted(newest)
    with FeatureStore(redis_url, namespace="t") as store:
        stored = store.read(users)
    for user, got in zip(users, stored, strict=True):
        want = newest[user]
        assert got == {**want.fields, "updated_at": repr(want.updated_at)}, user
