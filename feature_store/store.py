"""FeatureStore: per-user feature hashes in Redis with newer-wins writes and pipelined reads (DESIGN.md §6).

Every Redis call goes through `with_retries`: ConnectionError/TimeoutError are
retried `retries` times with exponential backoff, then `StoreUnavailable` is
raised. Writes are safe to retry: each row is one Lua script that writes the
row wholly, and only when it is strictly newer than what is stored.
Worst case before StoreUnavailable: (retries + 1) * timeout_s plus the backoff.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from feature_store.errors import StoreError, StoreUnavailable
from feature_store.schema import (
    SCHEMA_VERSION,
    USER_FIELDS,
    UserFeatures,
    check_name,
    encode_timestamp,
    job_prefix,
    schema_key,
    user_key,
    user_prefix,
)

T = TypeVar("T")
PIPELINE_ROWS = 1000
SCAN_COUNT = 1000

# KEYS[1] user hash; ARGV[1] updated_at; ARGV[2] TTL in seconds (0: no expiry); ARGV[3..] field, value pairs.
# Returns 1 when written, 0 when the stored row is as new or newer (a no-op).
NEWER_WINS_LUA = """
local stored = tonumber(redis.call('HGET', KEYS[1], 'updated_at'))
if stored and stored >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[1], unpack(ARGV, 3))
if tonumber(ARGV[2]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) else redis.call('PERSIST', KEYS[1]) end
return 1
"""


@dataclass(frozen=True)
class WriteResult:
    """Rows written, and rows skipped because the stored row was as new or newer."""

    written: int = 0
    stale: int = 0

    def __add__(self, other: WriteResult) -> WriteResult:
        return WriteResult(self.written + other.written, self.stale + other.stale)


def redact_url(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"//[^@/]*@", "//***@", url)


class FeatureStore:
    """Per-user feature hashes `<namespace>:user:<id>` in one Redis database."""

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", namespace: str = "reasonrec",
                 ttl_s: int | None = 30 * 86400, timeout_s: float = 2.0, retries: int = 3,
                 backoff_s: float = 0.05) -> None:
        try:
            pool = redis.ConnectionPool.from_url(
                url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s, decode_responses=True,
                retry=Retry(NoBackoff(), 0))
        except ValueError as exc:
            raise StoreError(f"bad Redis URL {redact_url(url)!r}: {exc}") from exc
        self._attach(redis.Redis(connection_pool=pool), url, namespace, ttl_s, retries, backoff_s)

    @classmethod
    def from_client(cls, client: redis.Redis, namespace: str = "reasonrec", ttl_s: int | None = 30 * 86400,
                    retries: int = 3, backoff_s: float = 0.05) -> FeatureStore:
        """A store over an existing client (tests); the client must use decode_responses=True."""
        kwargs = client.connection_pool.connection_kwargs
        if not kwargs.get("decode_responses"):
            raise StoreError("FeatureStore.from_client needs a client made with decode_responses=True")
        url = f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"
        store = cls.__new__(cls)
        store._attach(client, url, namespace, ttl_s, retries, backoff_s)
        return store

    def _attach(self, client: redis.Redis, url: str, namespace: str, ttl_s: int | None, retries: int,
                backoff_s: float) -> None:
        if ttl_s is not None and ttl_s <= 0:
            raise StoreError(f"ttl_s must be positive or None, got {ttl_s}")
        self._client, self._url, self._namespace = client, url, check_name("namespace", namespace)
        self._ttl_s, self._retries, self._backoff_s = ttl_s, max(0, retries), backoff_s
        self._newer_wins = client.register_script(NEWER_WINS_LUA)

    @property
    def namespace(self) -> str:
        return self._namespace

    @property
    def url(self) -> str:
        return self._url

    @property
    def ttl_s(self) -> int | None:
        return self._ttl_s

    @property
    def client(self) -> redis.Redis:
        """The redis-py client; call it through `with_retries`."""
        return self._client

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def with_retries(self, what: str, operation: Callable[[], T]) -> T:
        """operation(), retried on ConnectionError/TimeoutError with exponential backoff; else StoreUnavailable."""
        for attempt in range(self._retries + 1):
            try:
                return operation()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if attempt == self._retries:
                    raise StoreUnavailable(f"Redis at {redact_url(self._url)} is unavailable: {what} failed "
                                           f"after {attempt + 1} attempts ({type(exc).__name__}: {exc})") from exc
                time.sleep(self._backoff_s * 2**attempt)
        raise AssertionError("unreachable")

    def ping(self) -> None:
        """Return when Redis answers PING; StoreUnavailable otherwise."""
        self.with_retries("PING", self._client.ping)

    def ensure_schema(self) -> int:
        """Write the schema version when absent; StoreError when the namespace holds another version."""
        key = schema_key(self._namespace)
        self.with_retries("SET schema", lambda: self._client.set(key, SCHEMA_VERSION, nx=True))
        stored = self.with_retries("GET schema", lambda: self._client.get(key))
        if stored != str(SCHEMA_VERSION):
            raise StoreError(f"namespace {self._namespace!r} holds schema version {stored}, this code writes "
                             f"{SCHEMA_VERSION}; purge it or use another namespace")
        return SCHEMA_VERSION

    def write(self, rows: Sequence[UserFeatures]) -> WriteResult:
        """Newer-wins, idempotent write: a row lands wholly iff it is strictly newer than the stored one."""
        result = WriteResult()
        for start in range(0, len(rows), PIPELINE_ROWS):
            chunk = rows[start:start + PIPELINE_ROWS]
            flags = self.with_retries(f"write of {len(chunk)} rows", lambda c=chunk: self._write_pipeline(c))
            written = sum(int(f) for f in flags)
            result += WriteResult(written, len(chunk) - written)
        return result

    def _write_pipeline(self, rows: Sequence[UserFeatures]) -> list:
        ttl = str(self._ttl_s or 0)
        pipe = self._client.pipeline(transaction=False)
        for row in rows:
            if not isinstance(row, UserFeatures):
                raise StoreError(f"write takes UserFeatures rows, got {type(row).__name__}")
            pairs = [part for item in row.fields.items() for part in item]
            self._newer_wins(keys=[user_key(self._namespace, row.user_id)],
                             args=[encode_timestamp(row.updated_at), ttl, *pairs], client=pipe)
        return pipe.execute()

    def read(self, user_ids: Sequence[str], fields: Sequence[str] = USER_FIELDS) -> list[dict[str, str] | None]:
        """Per user, in order: None when the user has no row, else the requested fields that are stored."""
        fields = list(fields)
        unknown = sorted(set(fields) - set(USER_FIELDS))
        if unknown:
            raise StoreError(f"unknown fields {unknown}; known: {list(USER_FIELDS)}")
        asked = fields if "updated_at" in fields else [*fields, "updated_at"]
        out: list[dict[str, str] | None] = []
        for start in range(0, len(user_ids), PIPELINE_ROWS):
            chunk = user_ids[start:start + PIPELINE_ROWS]
            values = self.with_retries(f"read of {len(chunk)} users", lambda c=chunk: self._read_pipeline(c, asked))
            out.extend(_row_or_none(asked, fields, v) for v in values)
        return out

    def _read_pipeline(self, user_ids: Sequence[str], fields: list[str]) -> list:
        pipe = self._client.pipeline(transaction=False)
        for user_id in user_ids:
            pipe.hmget(user_key(self._namespace, user_id), fields)
        return pipe.execute()

    def scan_keys(self, prefix: str) -> Iterator[str]:
        """Every key starting with `prefix` (a namespace prefix), each once, by SCAN (COUNT 1000)."""
        seen: set[str] = set()
        cursor = 0
        while True:
            cursor, keys = self.with_retries(
                f"SCAN {prefix}*", lambda c=cursor: self._client.scan(c, match=f"{prefix}*", count=SCAN_COUNT))
            for key in keys:
                if key not in seen:
                    seen.add(key)
                    yield key
            if cursor == 0:
                return

    def scan_users(self) -> Iterator[str]:
        """Ids of every user with a row in this namespace (SCAN order, each once)."""
        prefix = user_prefix(self._namespace)
        return (key[len(prefix):] for key in self.scan_keys(prefix))

    def count_users(self) -> int:
        return sum(1 for _ in self.scan_users())

    def stats(self) -> dict:
        """users, users_with_cot, schema_version, ttl_s, jobs, and the Redis server's used memory."""
        users = list(self.scan_users())
        with_cot = self.count_with_field(users, "cot")
        schema = self.with_retries("GET schema", lambda: self._client.get(schema_key(self._namespace)))
        memory = self.with_retries("INFO memory", lambda: self._client.info("memory"))
        return {"namespace": self._namespace, "users": len(users), "users_with_cot": with_cot,
                "schema_version": int(schema) if schema else None, "ttl_s": self._ttl_s,
                "jobs": sum(1 for _ in self.scan_keys(job_prefix(self._namespace))),
                "redis_used_memory_bytes": memory.get("used_memory"),
                "redis_used_memory_human": memory.get("used_memory_human")}

    def count_with_field(self, user_ids: Sequence[str], field: str) -> int:
        """How many of `user_ids` have `field` stored (pipelined HEXISTS)."""
        total = 0
        for start in range(0, len(user_ids), PIPELINE_ROWS):
            keys = [user_key(self._namespace, u) for u in user_ids[start:start + PIPELINE_ROWS]]
            total += sum(self.with_retries(f"HEXISTS {field}", lambda k=keys: self._hexists_pipeline(k, field)))
        return total

    def _hexists_pipeline(self, keys: list[str], field: str) -> list[bool]:
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.hexists(key, field)
        return pipe.execute()

    def purge(self) -> int:
        """Delete every key of this namespace (batches of 1000); other namespaces stay. Returns keys deleted."""
        deleted, batch = 0, []
        for key in self.scan_keys(f"{self._namespace}:"):
            batch.append(key)
            if len(batch) == SCAN_COUNT:
                deleted += self._unlink(batch)
                batch = []
        return deleted + (self._unlink(batch) if batch else 0)

    def _unlink(self, keys: list[str]) -> int:
        return int(self.with_retries(f"UNLINK {len(keys)} keys", lambda: self._client.unlink(*keys)))


def _row_or_none(asked: list[str], wanted: list[str], values: list[str | None]) -> dict[str, str] | None:
    row = dict(zip(asked, values, strict=True))
    if row["updated_at"] is None:
        return None
    return {f: row[f] for f in wanted if row[f] is not None}

