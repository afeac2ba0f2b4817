"""Nearline benchmark: the CoT job vs raw vLLM generation, Redis batch reads, FAISS search and cold items.

    python -m benchmarks.nearline --bundle runs/sft_reasoning/bundle --users 10000

One run, same prompts (DESIGN.md §8; issue "Nearline"):
- `nearline`: `reasonrec nearline run --runner ray --users all` as a subprocess (Ray start-up, the vLLM actor,
  Redis reads of the histories, writes and checkpoints included), timed from process start to exit;
- `raw_vllm`: the same two vLLM generate stages (CoT, then the trie beam of the answer) in one plain process,
  every prompt in one call per stage, no Ray, no Redis — also from process start (engine start-up) to exit;
  ratio = nearline users/s over raw users/s (target >= 0.9);
- `redis_read_<n>`: pipelined HMGET batch reads of n users, p50/p99 (benchmarks/nearline_redis.py);
- `faiss_<kind>_<size>`: build seconds, top-50 latency and recall@50 vs exact search on synthetic clustered
  item vectors (benchmarks/nearline_faiss.py); `faiss_cold_add_*`: adding 1,000 cold items to index and trie.
Synthetic users are bootstrapped from the split's training histories (seeded), so prompts look like real ones.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.nearline_redis import measure_batch_reads
from training.eval.report import write_report

ENV = {"OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1"}


def synthetic_histories(split_dir: Path, n: int, seed: int = 0, max_len: int = 20) -> list[tuple[str, list[str]]]:
    """n users, each a random window (1..max_len items) of a random real training history."""
    from feature_store.materialize import histories_from_split

    real = [items for _, items in histories_from_split(split_dir) if items]
    rng = random.Random(seed)
    users = []
    for i in range(n):
        items = rng.choice(real)
        length = rng.randint(1, min(max_len, len(items)))
        start = rng.randint(0, len(items) - length)
        users.append((f"bench{i:06d}", items[start:start + length]))
    return users


def settings_args(args) -> list[str]:
    return ["--chunk-size", str(args.chunk_size), "--answer-k", str(args.answer_k),
            "--max-think-tokens", str(args.max_think_tokens)]


def run_nearline(args, url: str) -> tuple[float, dict]:
    command = [sys.executable, "-m", "training.cli", "nearline", "run", "--bundle", str(args.bundle),
               "--job-id", f"bench-{int(time.time())}", "--users", "all", "--runner", "ray", "--url", url,
               "--namespace", "bench", "--actor-cpus", str(args.actor_cpus), "--json", *settings_args(args)]
    started = time.perf_counter()
    done = subprocess.run(command, env={**os.environ, **ENV}, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"nearline job failed: {done.stderr[-3000:]}")
    return seconds, json.loads(done.stdout[done.stdout.index("{"):])


def run_raw(args, histories_file: Path) -> tuple[float, dict]:
    command = [sys.executable, "-m", "benchmarks.nearline", "--raw-worker", str(histories_file),
               "--bundle", str(args.bundle), "--threads", str(args.actor_cpus), *settings_args(args)]
    started = time.perf_counter()
    done = subprocess.run(command, env={**os.environ, **ENV}, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"raw vLLM run failed: {done.stderr[-3000:]}")
    return seconds, json.loads(done.stdout.strip().splitlines()[-1])


def raw_worker(args) -> None:
    """The baseline: one process, the reasoner's two vLLM stages over every prompt at once."""
    from feature_store.reasoner import NearlineReasoner, ReasonerSettings

    users = json.loads(Path(args.raw_worker).read_text())
    started = time.perf_counter()
    reasoner = NearlineReasoner(str(args.bundle), ReasonerSettings(args.answer_k, args.max_think_tokens or None,
                                                                   args.threads))
    engine_s = time.perf_counter() - started
    reasoned = reasoner.reason([u for u, _ in users], [h for _, h in users])
    print(json.dumps({"users": len(reasoned), "cot_tokens": sum(r.cot_tokens for r in reasoned),
                      "engine_seconds": engine_s, "generate_seconds": time.perf_counter() - started - engine_s,
                      "unclosed": sum(not r.closed for r in reasoned)}))


def generation_rows(args, url: str, histories: list) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        histories_file = Path(tmp) / "histories.json"
        histories_file.write_text(json.dumps(histories))
        raw_seconds, raw = run_raw(args, histories_file)
    job_seconds, job = run_nearline(args, url)
    n = len(histories)
    raw_ups, job_ups = n / raw_seconds, n / job_seconds
    common = f"{n} synthetic users, chunk {args.chunk_size}, answer top-{args.answer_k}, {args.actor_cpus} thread(s)"
    return [
        {"name": "raw_vllm", "metrics": {"users_per_s": raw_ups, "tokens_per_s": raw["cot_tokens"] / raw_seconds,
                                         "unclosed_rate": raw["unclosed"] / n},
         "seconds": {"total": raw_seconds, "engine_start": raw["engine_seconds"],
                     "generate": raw["generate_seconds"]},
         "notes": f"one process, all prompts per generate call, no Ray/Redis; {common}"},
        {"name": "nearline", "metrics": {"users_per_s": job_ups,
                                         # the job's own rate is over its run; re-based on the process wall time
                                         "tokens_per_s": job["tokens_per_s"] * job["seconds"] / job_seconds,
                                         "ratio": job_ups / raw_ups, "unclosed_rate": job["unclosed_rate"]},
         "seconds": {"total": job_seconds, "job_reported": job["seconds"]},
         "notes": f"reasonrec nearline run --runner ray (Ray Data map_batches, 1 vLLM actor), Redis writes + "
                  f"checkpoints; ratio = users/s over raw_vllm; {common}"},
    ]


def redis_rows(url: str) -> list[dict]:
    measured = measure_batch_reads(url)
    return [{"name": f"redis_read_{size}", "metrics": stats,
             "notes": f"FeatureStore.read of {size} random users (pipelined HMGET, all fields, 600-char CoT), "
                      f"{measured['n_users']} users stored, {measured['repeats']} calls"}
            for size, stats in measured["reads"].items()]


def faiss_rows(sizes: list[int]) -> list[dict]:
    from benchmarks.nearline_faiss import measure_cold_add, measure_faiss

    measured = measure_faiss(sizes=tuple(sizes))
    rows = []
    for size, kinds in measured["sizes"].items():
        for kind, stats in kinds.items():
            numbers = {k: v for k, v in stats.items() if isinstance(v, int | float)}
            rows.append({"name": f"faiss_{kind}_{size}", "metrics": numbers,
                         "notes": stats.get("skipped") or f"top-{measured['k']} of {size} items, d={measured['dim']}, "
                                  f"{measured['data']}; recall vs exact flat search; single queries on "
                                  f"{measured['search_threads']} thread, build on {measured['threads']}; "
                                  f"params {stats.get('params', '')}"})
    cold = measure_cold_add()
    for kind in ("flat", "hnsw", "ivf"):
        rows.append({"name": f"faiss_cold_add_{kind}", "metrics": cold[kind],
                     "notes": f"{cold['n_new']} cold items into an index of {cold['n_existing']} (+ trie in "
                              f"index_and_trie_one_by_one_s)"})
    rows.append({"name": "trie_cold_add", "metrics": {"seconds": cold["trie_only_s"]},
                 "notes": f"{cold['n_new']} SID-like paths inserted into an ItemTrie of {cold['n_existing']}"})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=Path("runs/sft_reasoning/bundle"))
    parser.add_argument("--split-dir", type=Path, default=Path("data/splits/ml-100k-temporal"))
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--chunk-size", type=int, default=512)
    parser.add_argument("--answer-k", type=int, default=10)
    parser.add_argument("--max-think-tokens", type=int, default=0, help="0: the bundle's setting")
    parser.add_argument("--actor-cpus", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--faiss-sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--skip", nargs="*", default=[], choices=["generation", "redis", "faiss"])
    parser.add_argument("--raw-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_worker:
        raw_worker(args)
        return
    from tests.redis_server import RedisServer

    rows = []
    with RedisServer() as server:
        if "generation" not in args.skip:
            from feature_store.materialize import materialize_histories
            from feature_store.store import FeatureStore

            histories = synthetic_histories(args.split_dir, args.users)
            with FeatureStore(server.url, namespace="bench", ttl_s=None) as store:
                materialize_histories(store, histories, updated_at=1.0)
            rows += generation_rows(args, server.url, histories)
        if "redis" not in args.skip:
            rows += redis_rows(server.url)
    if "faiss" not in args.skip:
        rows += faiss_rows(args.faiss_sizes)
    rows = carried_rows(args.skip) + rows
    write_report("nearline", rows, "python -m " + " ".join(["benchmarks.nearline", *sys.argv[1:]]),
                 notes_md=targets_markdown(rows), plot_metric=None)


TARGETS = {"ratio": 0.9, "build_s": 60.0, "p50_ms": 5.0, "recall": 0.95}  # the targets (1M items for FAISS)


def targets_markdown(rows: list[dict]) -> str:
    """The Targets section: the job/raw ratio and, per FAISS kind at 1M items, build time, top-50 p50 and recall."""
    by_name = {r["name"]: r.get("metrics", {}) for r in rows}
    lines = ["## Targets", ""]
    if "ratio" in by_name.get("nearline", {}):
        ratio = by_name["nearline"]["ratio"]
        lines.append(f"- nearline job / raw vLLM users/s = {ratio:.3f} (target >= {TARGETS['ratio']}): "
                     f"**{'met' if ratio >= TARGETS['ratio'] else 'not met'}**")
    for kind in ("ivf", "hnsw", "flat"):
        m = by_name.get(f"faiss_{kind}_1000000", {})
        if "p50_ms" not in m:
            continue
        met = (m["build_s"] <= TARGETS["build_s"] and m["p50_ms"] <= TARGETS["p50_ms"]
               and m["recall"] >= TARGETS["recall"])
        lines.append(f"- FAISS {kind} at 1M items: build {m['build_s']:.1f} s (<= {TARGETS['build_s']:g}), top-50 p50 "
                     f"{m['p50_ms']:.2f} ms (<= {TARGETS['p50_ms']:g}), recall@50 {m['recall']:.3f} "
                     f"(>= {TARGETS['recall']}): **{'met' if met else 'not met'}**")
    return "\n".join(lines)


SECTION_PREFIXES = {"generation": ("raw_vllm", "nearline"), "redis": ("redis_",), "faiss": ("faiss_", "trie_")}


def carried_rows(skipped: list[str], path: Path = Path("reports/nearline.json")) -> list[dict]:
    """Rows of the skipped sections from the existing report, each noting the run it came from, so sections
    can be measured one at a time and still land in one report."""
    if not path.is_file():
        return []
    old = json.loads(path.read_text())
    prefixes = tuple(p for section in skipped for p in SECTION_PREFIXES[section])
    rows = []
    for row in old["rows"]:
        if prefixes and row["name"].startswith(prefixes):
            origin = row.get("from_run") or f"{old['command']} (commit {old['git_commit']}, {old['created_at']})"
            rows.append({**row, "from_run": origin})
    return rows


if __name__ == "__main__":
    main()
