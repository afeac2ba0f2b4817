"""Redis side of reasoning mode: one user's row in one pipelined HMGET, cached user vectors, the nearline queue.

Keys (feature_store/schema.py has the per-user hash):

    <ns>:user:<id>        fields read here: history, cot, answer, updated_at, user_vector, vector_version
    <ns>:nearline:queue   a set of user ids that asked for reasoning with no cached CoT (SADD); the next
                          nearline run may take them (wiring that into `select_users` is the job's business)

A computed user vector is written back with `VECTOR_WRITE_LUA`: only the two vector fields, and only while
the row's `updated_at` is still the one read with the inputs. It never touches `updated_at` or the TTL, so the
nearline job's newer-wins writes are unaffected, and a vector computed from a row the job has since rewritten
is dropped instead of landing next to a newer CoT. The vector's `vector_version` names its inputs anyway,
so even a stale vector would only be a cache miss, never a wrong answer.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from feature_store.schema import encode_vector, queue_key, user_key
from feature_store.store import FeatureStore

READ_FIELDS = ("history", "cot", "answer", "updated_at", "user_vector", "vector_version")

# KEYS[1] user hash; ARGV[1] updated_at read with the inputs; ARGV[2] user_vector; ARGV[3] vector_version.
# Returns 1 when written, 0 when the row is gone or changed since it was read.
VECTOR_WRITE_LUA = """
if redis.call('HGET', KEYS[1], 'updated_at') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'user_vector', ARGV[2], 'vector_version', ARGV[3])
return 1
"""


def nearline_queue_key(namespace: str) -> str:
    """The set of users waiting for a CoT: `<ns>:nearline:queue` (`feature_store.schema.queue_key`)."""
    return queue_key(namespace)


class UserVectorStore:
    """Reads users' reasoning rows and writes their vectors back, through a FeatureStore (bounded retries;
    StoreUnavailable when Redis cannot be reached)."""

    def __init__(self, store: FeatureStore):
        self.store = store
        self._write_script = store.client.register_script(VECTOR_WRITE_LUA)

    def read(self, user_ids: Sequence[str]) -> list[dict[str, str] | None]:
        """Per user: None (no row) or the stored READ_FIELDS; one pipelined HMGET per 1000 users."""
        return self.store.read(list(user_ids), READ_FIELDS)

    def write_vectors(self, rows: Sequence[tuple[str, str, np.ndarray, str]]) -> int:
        """rows: (user_id, updated_at as read, vector [d], vector_version) -> how many were written (pipelined)."""
        if not rows:
            return 0
        ns = self.store.namespace

        def run() -> list:
            pipe = self.store.client.pipeline(transaction=False)
            for user_id, updated_at, vector, version in rows:
                self._write_script(keys=[user_key(ns, user_id)], args=[updated_at, encode_vector(vector), version],
                                   client=pipe)
            return pipe.execute()

        return sum(int(flag) for flag in self.store.with_retries(f"write of {len(rows)} user vectors", run))

    def enqueue(self, user_ids: Collection[str]) -> None:
        """Add users to the nearline queue set (SADD)."""
        if user_ids:
            key = nearline_queue_key(self.store.namespace)
            self.store.with_retries("SADD nearline queue", lambda: self.store.client.sadd(key, *user_ids))

    def queued(self) -> set[str]:
        """Every user id in the nearline queue (SMEMBERS; for tests and the job)."""
        key = nearline_queue_key(self.store.namespace)
        return set(self.store.with_retries("SMEMBERS nearline queue", lambda: self.store.client.smembers(key)))
