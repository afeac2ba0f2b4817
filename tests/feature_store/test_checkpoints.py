"""Job checkpoints: begin/resume, fingerprint mismatch, finished chunks and their counters."""

from __future__ import annotations

import threading

import pytest

from feature_store.checkpoints import JobCheckpoints, list_jobs
from feature_store.errors import StoreError
from feature_store.schema import job_key

pytestmark = pytest.mark.integration


@pytest.mark.timeout(30)
def test_begin_stores_meta_once_and_resume_returns_it(store):
    first = JobCheckpoints(store, "job-1").begin({"fingerprint": "abc", "updated_at": "100.0"})
    assert first == {"fingerprint": "abc", "updated_at": "100.0"}
    resumed = JobCheckpoints(store, "job-1").begin({"fingerprint": "abc", "updated_at": "200.0"})
    assert resumed["updated_at"] == "100.0"  # the stored timestamps win, so a resumed job rewrites the same rows
    assert JobCheckpoints(store, "job-1").meta() == first
    assert 3590 <= store.client.ttl(job_key("t", "job-1")) <= 3600


@pytest.mark.timeout(30)
def test_other_fingerprint_is_refused(store):
    JobCheckpoints(store, "job-1").begin({"fingerprint": "abc"})
    with pytest.raises(StoreError, match="job job-1 was started with other users/settings; use a new --job-id"):
        JobCheckpoints(store, "job-1").begin({"fingerprint": "xyz"})
    with pytest.raises(StoreError, match="fingerprint"):
        JobCheckpoints(store, "job-2").begin({"updated_at": "1"})
    with pytest.raises(StoreError):
        JobCheckpoints(store, "job-2").begin({"fingerprint": 3})
    with pytest.raises(StoreError):
        JobCheckpoints(store, "bad id")


@pytest.mark.timeout(30)
def test_racing_begins_agree_on_one_meta(store):
    results, start = [], threading.Barrier(4)

    def begin(n: int) -> None:
        start.wait()
        results.append(JobCheckpoints(store, "race").begin({"fingerprint": "f", "updated_at": str(n)}))

    threads = [threading.Thread(target=begin, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(results) == 4 and all(r == results[0] for r in results)


@pytest.mark.timeout(30)
def test_done_chunks_and_summed_counters(store):
    job = JobCheckpoints(store, "job-1")
    job.begin({"fingerprint": "f"})
    assert job.done() == set() and job.counters() == {}
    job.mark_done(0, {"written": 10, "stale": 0, "seconds": 1.5})
    job.mark_done(3, {"written": 5, "stale": 2, "seconds": 0.5})
    job.mark_done(3, {"written": 5, "stale": 2, "seconds": 0.5})  # marking twice counts once
    assert job.done() == {0, 3}
    assert job.counters() == {"written": 15, "stale": 2, "seconds": 2.0}
    assert not job.finished()
    job.finish({"users": 15, "elapsed": 2.0})
    assert job.finished()
    info = job.info()
    assert (info["chunks_done"], info["meta"]) == (2, {"fingerprint": "f"})
    assert info["summary"] == {"users": 15, "elapsed": 2.0}
    assert info["finished_at"] >= info["started_at"] > 0
    for bad_id, counters in ((-1, {}), ("1", {}), (True, {}), (1, {"n": "3"})):
        with pytest.raises(StoreError):
            job.mark_done(bad_id, counters)


@pytest.mark.timeout(30)
def test_list_jobs(store):
    assert list_jobs(store) == []
    for job_id in ("b", "a"):
        JobCheckpoints(store, job_id).begin({"fingerprint": "f"})
    assert list_jobs(store) == ["a", "b"]
