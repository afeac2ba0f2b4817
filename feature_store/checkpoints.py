"""Job checkpoints: a nearline run records each finished chunk, so a rerun resumes where it stopped.

State of job J lives in the hash `<ns>:job:J`:
  meta         JSON of the settings the job started with (must hold a `fingerprint`)
  started_at   when `begin` first ran (seconds since the epoch)
  chunk:<id>   JSON counters of a finished chunk, written only after the chunk's rows
  finished_at, summary   set by `finish`
The hash gets the store's TTL (refreshed on every write), like the user rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

from feature_store.errors import StoreError
from feature_store.schema import check_name, job_key, job_prefix
from feature_store.store import FeatureStore

CHUNK_PREFIX = "chunk:"


class JobCheckpoints:
    """Progress of one job id: its start settings and the chunks it has finished."""

    def __init__(self, store: FeatureStore, job_id: str) -> None:
        self._store = store
        self.job_id = check_name("job id", job_id)
        self.key = job_key(store.namespace, job_id)

    def begin(self, meta: Mapping[str, str]) -> dict[str, str]:
        """Store `meta` on first call; later, return the stored meta if the fingerprints match, else StoreError.

        The returned meta is what the caller must use (e.g. its `updated_at`, so a resumed job writes the
        same timestamps and the newer-wins guard turns repeated rows into no-ops).
        """
        meta = _checked_meta(meta)
        text = json.dumps(meta, sort_keys=True)
        stored = json.loads(self._store.with_retries(f"begin job {self.job_id}", lambda: self._begin(text)))
        if stored.get("fingerprint") != meta["fingerprint"]:
            raise StoreError(f"job {self.job_id} was started with other users/settings; use a new --job-id")
        return stored

    def _begin(self, meta_text: str) -> str:
        pipe = self._store.client.pipeline(transaction=True)
        pipe.hsetnx(self.key, "meta", meta_text)
        pipe.hsetnx(self.key, "started_at", repr(time.time()))
        pipe.hget(self.key, "meta")
        self._queue_expire(pipe)
        return pipe.execute()[2]

    def meta(self) -> dict[str, str] | None:
        """The stored start settings, None before `begin`."""
        text = self._store.with_retries("HGET meta", lambda: self._store.client.hget(self.key, "meta"))
        return json.loads(text) if text else None

    def done(self) -> set[int]:
        """Ids of the finished chunks."""
        names = self._store.with_retries("HKEYS job", lambda: self._store.client.hkeys(self.key))
        return {int(n[len(CHUNK_PREFIX):]) for n in names if n.startswith(CHUNK_PREFIX)}

    def mark_done(self, chunk_id: int, counters: Mapping[str, float]) -> None:
        """Record chunk `chunk_id` as finished with its counters; call it only after the chunk's rows are written."""
        if isinstance(chunk_id, bool) or not isinstance(chunk_id, int) or chunk_id < 0:
            raise StoreError(f"chunk id must be a non-negative int, got {chunk_id!r}")
        text = json.dumps(_checked_counters(counters), sort_keys=True)
        self._hset(f"mark chunk {chunk_id} done", {f"{CHUNK_PREFIX}{chunk_id}": text})

    def counters(self) -> dict[str, float]:
        """Counters summed over the finished chunks."""
        entries = self._store.with_retries("HGETALL job", lambda: self._store.client.hgetall(self.key))
        total: dict[str, float] = {}
        for name, text in entries.items():
            if name.startswith(CHUNK_PREFIX):
                for counter, value in json.loads(text).items():
                    total[counter] = total.get(counter, 0) + value
        return total

    def finish(self, summary: Mapping) -> None:
        """Mark the job finished, with a JSON summary (non-JSON values written as strings)."""
        self._hset("finish job", {"finished_at": repr(time.time()), "summary": json.dumps(dict(summary), default=str)})

    def finished(self) -> bool:
        return bool(self._store.with_retries("HEXISTS finished_at",
                                             lambda: self._store.client.hexists(self.key, "finished_at")))

    def info(self) -> dict:
        """Everything known about the job: meta, started_at, finished_at, chunks_done, counters, summary."""
        entries = self._store.with_retries("HGETALL job", lambda: self._store.client.hgetall(self.key))
        return {"job_id": self.job_id, "meta": json.loads(entries["meta"]) if "meta" in entries else None,
                "started_at": _float_or_none(entries.get("started_at")),
                "finished_at": _float_or_none(entries.get("finished_at")),
                "chunks_done": sum(1 for n in entries if n.startswith(CHUNK_PREFIX)), "counters": self.counters(),
                "summary": json.loads(entries["summary"]) if "summary" in entries else None}

    def _hset(self, what: str, mapping: dict[str, str]) -> None:
        def run() -> None:
            pipe = self._store.client.pipeline(transaction=False)
            pipe.hset(self.key, mapping=mapping)
            self._queue_expire(pipe)
            pipe.execute()

        self._store.with_retries(what, run)

    def _queue_expire(self, pipe) -> None:
        if self._store.ttl_s:
            pipe.expire(self.key, self._store.ttl_s)


def list_jobs(store: FeatureStore) -> list[str]:
    """Sorted ids of every job with checkpoints in the store's namespace."""
    prefix = job_prefix(store.namespace)
    return sorted(key[len(prefix):] for key in store.scan_keys(prefix))


def _checked_meta(meta: Mapping[str, str]) -> dict[str, str]:
    if "fingerprint" not in meta:
        raise StoreError("job meta needs a 'fingerprint' entry (a hash of the users and settings of the job)")
    bad = sorted(str(k) for k, v in meta.items() if not isinstance(k, str) or not isinstance(v, str))
    if bad:
        raise StoreError(f"job meta keys and values must be strings; not strings: {bad}")
    return dict(meta)


def _checked_counters(counters: Mapping[str, float]) -> dict[str, float]:
    bad = sorted(str(k) for k, v in counters.items()
                 if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, int | float))
    if bad:
        raise StoreError(f"chunk counters must map names to numbers; bad entries: {bad}")
    return dict(counters)


def _float_or_none(text: str | None) -> float | None:
    return float(text) if text is not None else None
