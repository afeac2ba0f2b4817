"""Key layout and value encoding of the Redis feature store (DESIGN.md §6).

One hash per user, `<ns>:user:<user_id>`, with the fields of USER_FIELDS (all
strings); `updated_at` (seconds since the epoch, a float written with `repr`)
drives newer-wins writes. `user_vector` caches the Rechead's user vector (base64 of float32
little-endian, `encode_vector`) and `vector_version` says what it was computed from
("<Rechead bundle version>:<sha of its inputs>"), so a reader uses it only when both still match.
Job checkpoints live in `<ns>:job:<job_id>`, the
schema version in `<ns>:schema`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from feature_store.errors import StoreError

SCHEMA_VERSION = 1
USER_FIELDS = ("history", "cot", "answer", "model_version", "job_id", "updated_at", "cot_history_sha",
               "user_vector", "vector_version")
WRITABLE_FIELDS = frozenset(USER_FIELDS) - {"updated_at"}
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def check_name(kind: str, name: str) -> str:
    """`name` if it is a safe key part (letters, digits, `_.-`: no glob characters, no `:`), else StoreError."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise StoreError(f"{kind} {name!r} must be non-empty letters, digits, '_', '.' or '-'")
    return name


def user_key(ns: str, user_id: str) -> str:
    return f"{ns}:user:{user_id}"


def user_prefix(ns: str) -> str:
    return f"{ns}:user:"


def job_key(ns: str, job_id: str) -> str:
    return f"{ns}:job:{job_id}"


def job_prefix(ns: str) -> str:
    return f"{ns}:job:"


def schema_key(ns: str) -> str:
    return f"{ns}:schema"


def queue_key(ns: str) -> str:
    """The set of users that asked for reasoning with no cached CoT: `<ns>:nearline:queue` (SADD by serving)."""
    return f"{ns}:nearline:queue"


def encode_history(items: Sequence[str]) -> str:
    """Item ids (oldest first) as a compact JSON list."""
    return json.dumps([str(i) for i in items], separators=(",", ":"))


def decode_history(text: str) -> list[str]:
    """Inverse of encode_history; StoreError when `text` is not a JSON list of strings."""
    try:
        items = json.loads(text)
    except (TypeError, json.JSONDecodeError) as exc:
        raise StoreError(f"history is not JSON: {text[:80]!r}") from exc
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise StoreError(f"history is not a JSON list of item ids: {text[:80]!r}")
    return items


def history_sha(items: Sequence[str]) -> str:
    """16 hex digits of sha256(encode_history(items)): ties a cached CoT to the history it was written from."""
    return hashlib.sha256(encode_history(items).encode()).hexdigest()[:16]


def encode_vector(vector: np.ndarray) -> str:
    """A 1-d vector [d] as base64 of its float32 little-endian bytes (4 * d bytes before encoding)."""
    x = np.asarray(vector, dtype="<f4")
    if x.ndim != 1 or x.size == 0:
        raise StoreError(f"a user vector must be 1-d and non-empty, got shape {x.shape}")
    return base64.b64encode(x.tobytes()).decode("ascii")


def decode_vector(text: str, dim: int | None = None) -> np.ndarray:
    """Inverse of encode_vector: float32 [d] (native order); StoreError when malformed or not `dim` long."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"user vector is not base64: {str(text)[:40]!r}") from exc
    if not raw or len(raw) % 4:
        raise StoreError(f"user vector holds {len(raw)} bytes, not a whole number of float32")
    vector = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if dim is not None and vector.size != dim:
        raise StoreError(f"user vector has {vector.size} dimensions, expected {dim}")
    return vector


def encode_timestamp(updated_at: float) -> str:
    """`repr` of the float: exact round trip, and Lua's tonumber reads the same double."""
    return repr(float(updated_at))


@dataclass(frozen=True)
class UserFeatures:
    """One row to write: a user's fields (any subset of USER_FIELDS but `updated_at`) at time `updated_at`."""

    user_id: str
    updated_at: float
    fields: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.user_id, str) or not self.user_id:
            raise StoreError(f"user_id must be a non-empty string, got {self.user_id!r}")
        if not isinstance(self.updated_at, int | float) or not math.isfinite(self.updated_at):
            raise StoreError(f"updated_at must be a finite number, got {self.updated_at!r}")
        unknown = sorted(set(self.fields) - WRITABLE_FIELDS)
        if unknown:
            raise StoreError(f"unknown or reserved fields {unknown}; writable: {sorted(WRITABLE_FIELDS)}")
        bad = sorted(k for k, v in self.fields.items() if not isinstance(v, str))
        if bad:
            raise StoreError(f"field values must be strings; not strings: {bad}")
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))
