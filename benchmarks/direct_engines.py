"""Direct-mode latency: the vLLM engine (AsyncLLM) vs the native engine (batched KV-cache beam), same bundle.

    python -m benchmarks.direct_engines                      # a tiny untrained bundle (hidden 64, 2 layers)
    python -m benchmarks.direct_engines --bundle runs/sft/bundle --requests 200 --k 10

Both engines answer the same seeded histories, as the app would call them: the native engine behind the
`MicroBatcher` (concurrent requests share one beam search), the vLLM engine with `await recommend` (its
scheduler batches concurrent requests). Per engine and concurrency (clients each sending their requests
one after another): latency per request (p50 / p90 / mean ms) and throughput; plus the top-k agreement of
the two engines. Prints one JSON object, on the last line of stdout. Torch in this process gets `--threads`
threads; vLLM's engine core (a child process) takes one per core it binds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np

from serving.engine import DirectQuery
from serving.engine.batcher import MicroBatcher
from serving.engine.native import NativeDirectEngine


def histories(catalog_ids: list[str], n: int, seed: int = 0, max_len: int = 20) -> list[tuple[str, ...]]:
    """n seeded histories of 1..max_len distinct catalog items."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, min(max_len, len(catalog_ids) - 1) + 1, size=n)
    return [tuple(rng.choice(catalog_ids, size=int(m), replace=False).tolist()) for m in lengths]


async def timed_clients(call: Callable[[DirectQuery], Awaitable], queries: list[DirectQuery],
                        concurrency: int) -> dict:
    """`concurrency` clients split `queries` and send theirs one after another; latency stats in ms."""
    latencies: list[float] = []

    async def client(mine: list[DirectQuery]) -> None:
        for query in mine:
            started = time.perf_counter()
            await call(query)
            latencies.append(1000 * (time.perf_counter() - started))

    started = time.perf_counter()
    await asyncio.gather(*(client(queries[c::concurrency]) for c in range(concurrency)))
    wall = time.perf_counter() - started
    ordered = sorted(latencies)
    return {"concurrency": concurrency, "p50_ms": round(statistics.median(ordered), 2),
            "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 2),
            "mean_ms": round(statistics.fmean(ordered), 2), "throughput_rps": round(len(queries) / wall, 1)}


async def measure(native: NativeDirectEngine, vllm_engine, queries: list[DirectQuery],
                  levels: list[int]) -> tuple[list[dict], dict]:
    """Rows of {engine, concurrency, p50/p90/mean ms, throughput} for both engines at every level, and
    their agreement (on the loop the vLLM engine is bound to)."""
    batcher = MicroBatcher(native.recommend_batch, max_batch_size=max(levels), batch_wait_ms=2,
                           max_queue=4 * len(queries), name="native")

    async def via_batcher(query: DirectQuery):
        return await batcher.submit(query, timeout_s=600)

    await vllm_engine.warm_async()
    for call in (via_batcher, vllm_engine.recommend):  # warm both paths
        await timed_clients(call, queries[:8], 2)
    rows = []
    for name, call in (("native", via_batcher), ("vllm", vllm_engine.recommend)):
        for level in levels:
            rows.append({"engine": name, **await timed_clients(call, queries, level)})
    batcher.close()
    return rows, await agreement(native, vllm_engine, queries[:32])


async def agreement(native: NativeDirectEngine, vllm_engine, queries: list[DirectQuery]) -> dict:
    """Mean top-k overlap of the two engines' items and the largest score difference on shared items."""
    a, b = native.recommend_batch(queries), await asyncio.gather(*(vllm_engine.recommend(q) for q in queries))
    overlap, diff = [], 0.0
    for x, y in zip(a, b, strict=True):
        sx, sy = {i.item_id: i.score for i in x}, {i.item_id: i.score for i in y}
        overlap.append(len(sx.keys() & sy.keys()) / max(1, len(sx)))
        diff = max([diff, *(abs(sx[i] - sy[i]) for i in sx.keys() & sy.keys())])
    return {"topk_overlap": round(statistics.fmean(overlap), 4), "max_score_diff": diff}


def run(bundle: Path, n_requests: int, k: int, levels: list[int], threads: int, beam_width: int | None) -> dict:
    import torch

    from serving.engine.vllm_engine import VLLMDirectEngine

    torch.set_num_threads(threads)
    native = NativeDirectEngine.from_bundle(bundle, device="cpu", beam_width=beam_width)
    started = time.perf_counter()
    vllm_engine = VLLMDirectEngine.from_bundle(bundle, beam_width=beam_width)
    start_s = time.perf_counter() - started
    queries = [DirectQuery(h, k, True, f"u{j}") for j, h in enumerate(histories(list(native.catalog.item_ids),
                                                                                 n_requests))]
    try:
        rows, agree = asyncio.run(measure(native, vllm_engine, queries, levels))
    finally:
        vllm_engine.shutdown()
    return {"bundle": str(bundle), "n_requests": n_requests, "k": k, "beam_width": native.describe()["beam_width"],
            "n_items": len(native.catalog), "torch_threads": threads, "vllm_start_s": round(start_s, 1),
            "rows": rows, "agreement": agree}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="a policy bundle (default: a tiny untrained one)")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--beam-width", type=int, default=None, help="default: the bundle's")
    parser.add_argument("--concurrency", default="1,8", help="comma-separated client counts")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the native engine")
    args = parser.parse_args()
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    levels = [int(c) for c in args.concurrency.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        bundle = args.bundle
        if bundle is None:
            from tests.policy_bundle import write_tiny_policy_bundle

            bundle = write_tiny_policy_bundle(Path(tmp) / "bundle", hidden=64, heads=2)
        result = run(bundle, args.requests, args.k, levels, args.threads, args.beam_width)
    print(json.dumps(result))  # one line, last: vLLM logs to stdout too


if __name__ == "__main__":  # needed: vLLM's CPU engine core is started with multiprocessing "spawn"
    main()
