"""Redis feature-store speed: pipelined batch reads and newer-wins writes on synthetic users.

Plain measuring functions; `benchmarks/nearline.py` composes the report. Everything is written into a
scratch namespace that is purged before and after, so a real store on the same server is untouched.
Run alone: `python -m benchmarks.nearline_redis [--url URL]` (without --url it starts a throwaway redis-server).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from feature_store.schema import UserFeatures, encode_history
from feature_store.store import FeatureStore

SCRATCH_NAMESPACE = "bench-nearline"
HISTORY_LEN, COT_CHARS = 20, 600


def synthetic_rows(n_users: int, updated_at: float, seed: int = 0) -> list[UserFeatures]:
    """n_users rows shaped like nearline output: a 20-item history, a 600-char CoT, an answer, a model version."""
    rng = random.Random(seed)
    cot = ("the user keeps returning to slow dramas and recent comedies; " * 10)[:COT_CHARS]
    return [UserFeatures(f"u{u}", updated_at, {
        "history": encode_history([str(rng.randrange(1, 1700)) for _ in range(HISTORY_LEN)]),
        "cot": cot, "answer": str(rng.randrange(1, 1700)), "model_version": "bench"}) for u in range(n_users)]


def _summary_ms(seconds: list[float], rows_per_call: int) -> dict:
    ordered = sorted(seconds)
    p99_index = min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))
    mean = statistics.fmean(ordered)
    return {"p50_ms": round(1000 * statistics.median(ordered), 3), "p99_ms": round(1000 * ordered[p99_index], 3),
            "mean_ms": round(1000 * mean, 3), "rows_per_s": round(rows_per_call / mean, 1), "calls": len(ordered)}


def _scratch_store(url: str, namespace: str) -> FeatureStore:
    store = FeatureStore(url, namespace=namespace, ttl_s=3600)
    store.purge()
    return store


def _write_in_chunks(store: FeatureStore, rows: list[UserFeatures], chunk_size: int) -> tuple[float, int]:
    """(seconds, rows written) of writing `rows` in `chunk_size` calls."""
    started, written = time.perf_counter(), 0
    for i in range(0, len(rows), chunk_size):
        written += store.write(rows[i:i + chunk_size]).written
    return time.perf_counter() - started, written


def measure_batch_reads(url: str, sizes: tuple[int, ...] = (1, 100, 1000), repeats: int = 200,
                        n_users: int = 10_000, namespace: str = SCRATCH_NAMESPACE, seed: int = 0) -> dict:
    """Latency of FeatureStore.read of `size` random users (all fields), `repeats` calls per size."""
    rng = random.Random(seed)
    store = _scratch_store(url, namespace)
    try:
        _write_in_chunks(store, synthetic_rows(n_users, time.time(), seed), 1000)
        users = [f"u{u}" for u in range(n_users)]
        store.read(users[:max(sizes)])  # warm the pool and the server
        reads = {}
        for size in sizes:
            seconds = []
            for _ in range(repeats):
                batch = rng.sample(users, size)
                started = time.perf_counter()
                rows = store.read(batch)
                seconds.append(time.perf_counter() - started)
                assert all(r is not None for r in rows)
            reads[str(size)] = _summary_ms(seconds, size)
        return {"n_users": n_users, "repeats": repeats, "fields": "all", "reads": reads}
    finally:
        store.purge()
        store.close()


def measure_writes(url: str, n_users: int = 10_000, chunk_size: int = 1000, namespace: str = SCRATCH_NAMESPACE,
                   seed: int = 0) -> dict:
    """Rows/s of FeatureStore.write in chunks: fresh rows, then the same rows again (newer-wins no-ops)."""
    store = _scratch_store(url, namespace)
    try:
        rows = synthetic_rows(n_users, time.time(), seed)
        fresh_s, written = _write_in_chunks(store, rows, chunk_size)
        again_s, rewritten = _write_in_chunks(store, rows, chunk_size)
        return {"rows": n_users, "chunk_size": chunk_size, "written": written, "rewritten": rewritten,
                "seconds": round(fresh_s, 3), "rows_per_s": round(n_users / fresh_s, 1),
                "stale_rewrite_rows_per_s": round(n_users / again_s, 1)}
    finally:
        store.purge()
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a Redis URL; default: start a throwaway redis-server")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    if args.url:
        result = {"reads": measure_batch_reads(args.url, repeats=args.repeats, n_users=args.users),
                  "writes": measure_writes(args.url, n_users=args.users)}
    else:
        from tests.redis_server import RedisServer

        with RedisServer() as server:
            result = {"reads": measure_batch_reads(server.url, repeats=args.repeats, n_users=args.users),
                      "writes": measure_writes(server.url, n_users=args.users)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
