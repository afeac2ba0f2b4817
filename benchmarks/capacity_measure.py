"""Small measurements the capacity model needs and no other report holds; plain functions, no report writing.

- `measure_redis_user_bytes`: Redis `used_memory` growth per user row written by `FeatureStore.write`
  (every field of a nearline row + a cached user vector, 30-day TTL), at a few CoT lengths;
- `measure_feedback_bytes`: bytes per event of the feedback log, JSONL file (`JsonlFeedbackLog`) and
  Redis stream (`RedisFeedbackLog`, `used_memory` growth incl. its dedupe set);
- `measure_index_bytes`: the IVF `ItemIndex` at a few item counts: `faiss.write_index` bytes and process RSS
  growth when that file is read back (the in-memory form), plus the Python `IdMap` (tracemalloc) per item.
Each runs in seconds on 2 cores; `benchmarks/capacity.py` composes them with the figures of other reports.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

import numpy as np
import redis

from feature_store.schema import UserFeatures, encode_history, encode_vector
from feature_store.store import FeatureStore
from serving.feedback import JsonlFeedbackLog, RedisFeedbackLog
from serving.retrieval import IndexSettings, ItemIndex
from serving.retrieval.idmap import IdMap

NAMESPACE = "capacity"
TTL_S = 30 * 86400  # FeatureStore's default TTL
MAX_ITEM_ID = 10_000_000  # ids drawn from the largest catalog of the table: the longest id strings


def used_memory(url: str) -> int:
    """INFO memory `used_memory` read over a fresh connection (the writer's is closed first: a pipeline's
    query buffer would otherwise still count)."""
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("memory")["used_memory"])
    finally:
        client.close()


def synthetic_user_row(i: int, cot_chars: int, history_len: int, answer_k: int, dim: int,
                       rng: random.Random) -> UserFeatures:
    """One row shaped like a nearline row plus a cached user vector (every USER_FIELDS field)."""
    items = [str(rng.randrange(MAX_ITEM_ID)) for _ in range(history_len)]
    cot = ("the user keeps returning to slow dramas and recent comedies; " * (cot_chars // 60 + 1))[:cot_chars]
    vector = np.asarray([rng.gauss(0, 1) for _ in range(dim)], dtype=np.float32)
    return UserFeatures(f"u{i:09d}", 1_700_000_000.0 + i, {
        "history": encode_history(items), "cot": cot,
        "answer": json.dumps([str(rng.randrange(MAX_ITEM_ID)) for _ in range(answer_k)]),
        "model_version": "b923f24353a1d375", "job_id": "nearline-1764489600",
        "cot_history_sha": f"{rng.getrandbits(64):016x}", "user_vector": encode_vector(vector),
        "vector_version": f"b923f24353a1d375:{rng.getrandbits(64):016x}"})


def measure_redis_user_bytes(url: str, cot_chars: tuple[int, ...] = (0, 512, 2048), n_users: int = 10_000,
                             history_len: int = 20, answer_k: int = 10, dim: int = 64, seed: int = 0) -> dict:
    """Per CoT length: used_memory growth / n_users after writing n_users rows into an emptied namespace."""
    rng = random.Random(seed)
    points = []
    for chars in cot_chars:
        with FeatureStore(url, namespace=NAMESPACE, ttl_s=TTL_S) as store:
            store.client.flushdb()
            store.write([synthetic_user_row(-1, chars, history_len, answer_k, dim, rng)])  # loads the Lua script
            store.client.flushdb()
        rows = [synthetic_user_row(i, chars, history_len, answer_k, dim, rng) for i in range(n_users)]
        before = used_memory(url)
        with FeatureStore(url, namespace=NAMESPACE, ttl_s=TTL_S) as store:
            written = store.write(rows).written
        grown = used_memory(url) - before
        points.append({"cot_chars": chars, "users": written, "bytes_per_user": round(grown / written, 1)})
    with FeatureStore(url, namespace=NAMESPACE) as store:
        store.client.flushdb()
        version = store.client.info("server")["redis_version"]
    return {"points": points, "users": n_users, "history_len": history_len, "answer_k": answer_k, "dim": dim,
            "ttl_s": TTL_S, "redis_version": version}


def synthetic_events(n: int, seed: int = 0, per_request: int = 10, start_ts: float = 1_764_489_600.0) -> list[dict]:
    """Feedback rows as `RecommendPipeline._feedback_row` makes them: `per_request` exposures per request id,
    every 10th request also one click."""
    rng, rows, now = random.Random(seed), [], start_ts
    while len(rows) < n:
        request, user, arm = uuid.UUID(int=rng.getrandbits(128)).hex, f"u{rng.randrange(10**8):09d}", "reasoning"
        events = ["exposure"] * per_request + (["click"] if len(rows) % (10 * per_request) == 0 else [])
        for event in events:
            now += 0.001
            rows.append({"ts": now, "received_at": now + 0.05, "user_id": user,
                         "item_id": str(rng.randrange(MAX_ITEM_ID)), "event": event, "request_id": request,
                         "arm": arm})
    return rows[:n]


def measure_feedback_bytes(url: str, n_events: int = 10_000, batch: int = 100) -> dict:
    """Bytes per event: JSONL file size / events; Redis stream + dedupe set used_memory growth / events."""
    rows = synthetic_events(n_events)
    with tempfile.TemporaryDirectory() as tmp:
        log = JsonlFeedbackLog(Path(tmp) / "feedback.jsonl")
        for start in range(0, len(rows), batch):
            log.append(rows[start:start + batch])
        log.close()
        jsonl = (Path(tmp) / "feedback.jsonl").stat().st_size
    with FeatureStore(url, namespace=NAMESPACE) as store:
        store.client.flushdb()
        RedisFeedbackLog(store).append([{**rows[0], "request_id": None}])  # loads the Lua script
        store.client.flushdb()
    before = used_memory(url)
    with FeatureStore(url, namespace=NAMESPACE) as store:
        stream = RedisFeedbackLog(store)
        for start in range(0, len(rows), batch):
            stream.append(rows[start:start + batch])
    grown = used_memory(url) - before
    with FeatureStore(url, namespace=NAMESPACE) as store:
        store.client.flushdb()
    return {"events": n_events, "jsonl_bytes_per_event": round(jsonl / n_events, 1),
            "redis_stream_bytes_per_event": round(grown / n_events, 1)}


# run in a fresh interpreter: in this process freed memory of the build would be reused and hide the growth
RSS_ON_LOAD = """
import resource, sys, faiss
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()
before = rss()
index = faiss.read_index(sys.argv[1])
print(rss() - before)
"""


def rss_growth_on_load(path: Path) -> int:
    """Resident-set growth of a fresh Python process when `faiss.read_index(path)` loads the index."""
    done = subprocess.run([sys.executable, "-c", RSS_ON_LOAD, str(path)], capture_output=True, text=True,
                          check=True, timeout=120)
    return int(done.stdout.strip())


def unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    """n random unit vectors [n, dim] float32 (sizes, not recall, are measured here)."""
    x = np.random.default_rng(seed).standard_normal((n, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def measure_index_bytes(sizes: tuple[int, ...] = (50_000, 200_000), dim: int = 64, nlist: int = 256) -> dict:
    """Per size: IVF ItemIndex (nlist fixed so sizes compare) write_index bytes, RSS growth on read_index
    in a fresh process,
    and the IdMap's Python bytes (tracemalloc) for as many string ids."""
    points = []
    settings = IndexSettings(kind="ivf", nlist=nlist, use_gpu="never")
    for n in sizes:
        ids = [str(i) for i in range(n)]
        started = time.perf_counter()
        index = ItemIndex.build(ids, unit_vectors(n, dim, seed=n), settings)
        build_s = time.perf_counter() - started
        with tempfile.TemporaryDirectory() as tmp:
            index.save(Path(tmp) / "index")
            path = Path(tmp) / "index" / "index.faiss"
            serialized = path.stat().st_size
            del index
            rss = rss_growth_on_load(path)
        tracemalloc.start()
        start_bytes = tracemalloc.get_traced_memory()[0]
        idmap = IdMap()
        idmap.assign([f"{i:08d}" for i in range(n)])  # 8-char ids: the longest ids of a 10M catalog
        idmap_bytes = tracemalloc.get_traced_memory()[0] - start_bytes
        tracemalloc.stop()
        del idmap
        points.append({"items": n, "serialized_bytes": serialized, "rss_bytes_on_load": rss,
                       "idmap_bytes": idmap_bytes, "build_s": round(build_s, 2)})
    return {"kind": "ivf", "nlist": nlist, "dim": dim, "points": points}
