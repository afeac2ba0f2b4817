"""Speed and recall of the FAISS item index (`serving/retrieval`) on synthetic items; no report writing.

    OMP_NUM_THREADS=2 python -m benchmarks.nearline_faiss [--sizes 10000,100000,1000000]

Items are a normalised Gaussian mixture (256 unit centres in d dims, noise 1.4/sqrt(d) per dim:
an item's cosine to its centre is ~0.6), queries come from the same mixture, so nearest
neighbours cluster the way real embeddings do and recall is meaningful (uniform noise would
make every approximate index look bad, well-separated clusters every one look perfect).

`measure_faiss` gives, per size and index kind: build seconds, top-k latency of one query at a
time (p50/p99 ms, as the service calls it), batched throughput, recall@k against exact search.
`measure_exclusion` compares the two ways of skipping seen items (over-fetch vs faiss IDSelector).
`measure_cold_add` times adding cold items to each index kind and to the real `ItemTrie`.
The lead composes these into `benchmarks/nearline.py`; numbers depend on machine load, which
the result records (`load_average`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import faiss
import numpy as np

from serving.retrieval import IndexSettings, ItemIndex, add_cold_items
from training.identifiers.trie import ItemTrie

BUILD_LIMIT_S = 300.0
N_CENTRES = 256
NOISE = 1.4


def mixture(n: int, dim: int, seed: int, stream: int) -> np.ndarray:
    """n unit vectors [n, dim] from the fixed mixture of `seed`; `stream` picks independent draws."""
    centres = np.random.default_rng(seed).standard_normal((N_CENTRES, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rng = np.random.default_rng([seed, stream])
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):  # chunks keep peak memory low at 1M
        m = min(100_000, n - start)
        x = centres[rng.integers(0, N_CENTRES, m)] + rng.standard_normal((m, dim), dtype=np.float32) * (
            NOISE / math.sqrt(dim))
        out[start: start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def exact_top(items: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Row indices [B, k] of the exact top-k items by inner product (faiss flat, batched BLAS)."""
    flat = faiss.IndexFlatIP(items.shape[1])
    flat.add(items)
    return flat.search(queries, k)[1]


def recall_at_k(results: list[list[tuple[str, float]]], truth: np.ndarray) -> float:
    """Mean |found ∩ exact| / k over queries; item ids are the row numbers as strings."""
    k = truth.shape[1]
    hits = [len({int(i) for i, _ in row} & set(t.tolist())) for row, t in zip(results, truth, strict=True)]
    return float(np.mean(hits)) / k


@contextmanager
def omp_threads(n: int | None) -> Iterator[None]:
    """faiss's OpenMP threads set to n inside the block (None: unchanged), restored after."""
    before = faiss.omp_get_max_threads()
    if n is not None:
        faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def time_single(index: ItemIndex, queries: np.ndarray, k: int) -> tuple[list[float], list]:
    """Per-query milliseconds and results, one query per call."""
    ms, results = [], []
    for q in queries:
        started = time.perf_counter()
        results.append(index.search(q[None, :], k)[0])
        ms.append((time.perf_counter() - started) * 1000)
    return ms, results


def measure_kind(kind: str, ids: list[str], items: np.ndarray, queries: np.ndarray, truth: np.ndarray,
                 k: int, search_threads: int | None) -> dict[str, Any]:
    """Build one index of `kind` and measure it (see module docstring)."""
    started = time.perf_counter()
    index = ItemIndex.build(ids, items, IndexSettings(kind=kind, use_gpu="never"))
    build_s = time.perf_counter() - started
    with omp_threads(search_threads):
        ms, results = time_single(index, queries, k)
    started = time.perf_counter()
    index.search(queries, k)
    batch_s = time.perf_counter() - started
    return {"build_s": round(build_s, 2), "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3), "batch_qps": round(len(queries) / batch_s, 1),
            "recall": round(recall_at_k(results, truth), 4), "describe": _params(index.describe())}


def _params(describe: dict[str, Any]) -> dict[str, Any]:
    return {key: describe[key] for key in ("nlist", "nprobe", "m", "ef_search") if key in describe}


def predicted_build_s(kind: str, size: int, seen: dict[str, tuple[int, float]]) -> float | None:
    """Build time of `kind` at `size` extrapolated from its last measured (size, seconds), ×1.3 for growth."""
    if kind not in seen:
        return None
    last_size, last_s = seen[kind]
    return last_s * size / last_size * 1.3


def measure_faiss(sizes: Sequence[int] = (10_000, 100_000, 1_000_000), dim: int = 64, k: int = 50,
                  n_queries: int = 500, kinds: Sequence[str] = ("flat", "hnsw", "ivf"), seed: int = 0,
                  search_threads: int | None = 1) -> dict:
    """Per size, per kind: build_s, p50_ms, p99_ms, batch_qps, recall@k (or `skipped` with the reason).

    Builds and the batched search use faiss's threads (OMP_NUM_THREADS); single queries run with
    `search_threads` (default 1, as in a Ray Serve replica: Ray sets OMP_NUM_THREADS=1, and on a busy
    2-core machine a 2-thread OpenMP region made one flat query at 100k items ~6x slower).
    """
    out: dict[str, Any] = {"dim": dim, "k": k, "n_queries": n_queries, "threads": faiss.omp_get_max_threads(),
                           "search_threads": search_threads,
                           "load_average_start": os.getloadavg(), "data": f"{N_CENTRES}-centre mixture, noise {NOISE}",
                           "sizes": {}}
    seen: dict[str, tuple[int, float]] = {}
    for size in sizes:
        items, queries = mixture(size, dim, seed, 1), mixture(n_queries, dim, seed, 2)
        truth, ids = exact_top(items, queries, k), [str(i) for i in range(size)]
        row = out["sizes"][str(size)] = {}
        for kind in kinds:
            guess = predicted_build_s(kind, size, seen)
            if guess is not None and guess > BUILD_LIMIT_S:
                row[kind] = {"skipped": f"build predicted ~{guess:.0f} s (> {BUILD_LIMIT_S:.0f} s) from "
                                        f"{seen[kind][1]:.1f} s at {seen[kind][0]} items"}
                continue
            row[kind] = measure_kind(kind, ids, items, queries, truth, k, search_threads)
            seen[kind] = (size, row[kind]["build_s"])
        del items
    out["load_average_end"] = os.getloadavg()
    return out


def measure_exclusion(size: int = 100_000, dim: int = 64, k: int = 50, n_excluded: Sequence[int] = (20, 200, 1000),
                      kinds: Sequence[str] = ("flat", "hnsw", "ivf"), n_queries: int = 100, seed: int = 0) -> dict:
    """Median single-query ms (1 thread) of ItemIndex.search (over-fetch) vs a faiss IDSelector, interleaved."""
    items, queries = mixture(size, dim, seed, 1), mixture(n_queries, dim, seed, 2)
    ids = [str(i) for i in range(size)]
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {"size": size, "k": k}
    for kind in kinds:
        index = ItemIndex.build(ids, items, IndexSettings(kind=kind, use_gpu="never"))
        out[kind] = {}
        for n_ex in n_excluded:
            excluded = [rng.choice(size, n_ex, replace=False) for _ in range(n_queries)]
            with omp_threads(1):
                over, sel = _time_exclusion(index, queries, excluded, k)
            out[kind][str(n_ex)] = {"overfetch_ms": round(over, 3), "selector_ms": round(sel, 3)}
    return out


def _time_exclusion(index: ItemIndex, queries: np.ndarray, excluded: list[np.ndarray], k: int) -> tuple[float, float]:
    over, sel = [], []
    raw = index._index  # the same faiss index; the selector path bypasses ItemIndex's filtering
    for q, ex in zip(queries, excluded, strict=True):
        started = time.perf_counter()
        index.search(q[None, :], k, exclude=[[str(i) for i in ex]])
        over.append(time.perf_counter() - started)
        started = time.perf_counter()
        params = _selector_params(index, faiss.IDSelectorNot(faiss.IDSelectorBatch(ex.astype(np.int64))))
        raw.search(q[None, :], k, params=params)
        sel.append(time.perf_counter() - started)
    return float(np.median(over)) * 1000, float(np.median(sel)) * 1000


def _selector_params(index: ItemIndex, sel: faiss.IDSelector) -> faiss.SearchParameters:
    if index.kind == "ivf":
        return faiss.SearchParametersIVF(sel=sel, nprobe=index.settings.nprobe)
    if index.kind == "hnsw":
        return faiss.SearchParametersHNSW(sel=sel, efSearch=index.settings.ef_search)
    return faiss.SearchParameters(sel=sel)


def sid_like_sequences(n: int, seed: int, start: int = 0) -> dict[str, list[int]]:
    """n distinct SID-like token-id paths: 3 levels of 256 codes + a disambiguation code (token ids disjoint)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, size=(n, 3))
    out: dict[str, list[int]] = {}
    taken: dict[tuple[int, ...], int] = {}
    for row, c in enumerate(codes.tolist()):
        extra = taken.get(tuple(c), 0)
        taken[tuple(c)] = extra + 1
        out[f"sid{start + row}"] = [10 + c[0], 300 + c[1], 600 + c[2], 900 + extra]
    return out


def measure_cold_add(n_existing: int = 10_000, n_new: int = 1000, dim: int = 64,
                     kinds: Sequence[str] = ("flat", "hnsw", "ivf"), seed: int = 0) -> dict:
    """Seconds to add n_new cold items (1 faiss thread, as in a serving replica): to each index kind in one
    call and one item per call, to the trie, and to both through `add_cold_items` one item per call."""
    vectors = mixture(n_existing + n_new, dim, seed, 3)
    paths = sid_like_sequences(n_existing + n_new, seed)
    ids = list(paths)
    old, new = ids[:n_existing], dict(zip(ids[n_existing:], vectors[n_existing:], strict=True))
    out: dict[str, Any] = {"n_existing": n_existing, "n_new": n_new, "dim": dim}
    for kind in kinds:
        out[kind] = _cold_add_kind(kind, old, vectors[:n_existing], new, paths)
    trie = ItemTrie.build({i: paths[i] for i in old})
    out["trie_only_s"] = _timed(lambda: [trie.insert(i, paths[i]) for i in new])
    return out


def _cold_add_kind(kind: str, old: list[str], old_vectors: np.ndarray, new: dict[str, np.ndarray],
                   paths: dict[str, list[int]]) -> dict[str, float]:
    settings = IndexSettings(kind=kind, use_gpu="never")
    fresh = [ItemIndex.build(old, old_vectors, settings) for _ in range(3)]
    trie = ItemTrie.build({i: paths[i] for i in old})
    with omp_threads(1):
        return _cold_add_timings(fresh, trie, new, paths)


def _cold_add_timings(fresh: list[ItemIndex], trie: ItemTrie, new: dict[str, np.ndarray],
                      paths: dict[str, list[int]]) -> dict[str, float]:
    return {
        "index_batch_s": _timed(lambda: fresh[0].add_items(list(new), np.stack(list(new.values())))),
        "index_one_by_one_s": _timed(lambda: [fresh[1].add_items([i], v[None, :]) for i, v in new.items()]),
        "index_and_trie_one_by_one_s": _timed(
            lambda: [add_cold_items(fresh[2], trie, {i: (v, paths[i])}) for i, v in new.items()]),
    }


def _timed(fn) -> float:
    """Seconds one call of `fn()` takes."""
    started = time.perf_counter()
    fn()
    return round(time.perf_counter() - started, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(","))
    result = {"faiss": measure_faiss(sizes, n_queries=args.queries), "exclusion": measure_exclusion(),
              "cold_add": measure_cold_add()}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
