"""Scenario `nearline_kill`: the nearline job (`feature_store.nearline.run_job`) SIGKILLed at a random chunk.

The job runs in its own process group (this module's `worker` entry point), so the kill is what a crash of the
driver does: nothing flushes, nothing cleans up. Each of `users` users has a history in Redis; a reference job
runs uninterrupted in one namespace, the job under test in another: it is SIGKILLed after a random number of
finished chunks (seeded) plus a random fraction of a batch, then started again with the same job id. The resumed
job must skip the finished chunks and leave the store identical, user by user and field by field (but the job's
own `updated_at`, one per job), to the reference.

Reasoner: `--reasoner fake` (default; CI) writes a deterministic CoT and answer from the history, with a delay
per batch so the kill lands mid-run; `--reasoner vllm --bundle B` runs the real vLLM reasoner of a reasoning
policy bundle in process (`local_runner`). The same scenario on Ray Data + vLLM with a trained bundle is
tests/feature_store/test_nearline_vllm.py (slow: it trains the bundle first).

    python -m loadtests.reliability.nearline --url URL --namespace NS --job-id J [--delay-s 0.05] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import asdict

from loadtests.reliability.harness import ENV, REPO_ROOT, Scenario, Stack, timed

BATCH_ROWS = 2  # rows per runner batch: batches straddle chunks on purpose


def fake_runner(delay_s: float):
    """A deterministic stand-in for the vLLM reasoner: CoT and answer derived from the history."""
    import numpy as np

    from feature_store.schema import decode_history

    def run(bundle_dir, settings, rows):
        for start in range(0, len(rows), BATCH_ROWS):
            part = rows[start:start + BATCH_ROWS]
            time.sleep(delay_s)
            histories = [decode_history(str(r["history"])) for r in part]
            yield {**{key: np.array([r[key] for r in part], dtype=object) for key in part[0]},
                   "cot": np.array([f"<think>after {' '.join(h)} comes {len(h)}</think>" for h in histories],
                                   dtype=object),
                   "answer": np.array([json.dumps([str(len(h) % 12 + 1)]) for h in histories], dtype=object),
                   "closed": np.array([True] * len(part)), "cot_tokens": np.array([len(h) + 4 for h in histories])}
    return run


def worker(argv: list[str] | None = None) -> None:
    """Run (or resume) one nearline job; prints its summary as JSON with --json."""
    from feature_store.nearline import NearlineSettings, local_runner, run_job
    from feature_store.store import FeatureStore

    p = argparse.ArgumentParser(description="one nearline job for the reliability scenario")
    p.add_argument("--url", required=True)
    p.add_argument("--namespace", required=True)
    p.add_argument("--job-id", required=True)
    p.add_argument("--chunk-size", type=int, default=5)
    p.add_argument("--delay-s", type=float, default=0.05)
    p.add_argument("--reasoner", choices=("fake", "vllm"), default="fake")
    p.add_argument("--bundle", default="unused")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    runner = fake_runner(args.delay_s) if args.reasoner == "fake" else local_runner
    with FeatureStore(args.url, args.namespace) as store:
        summary = run_job(store, args.bundle, args.job_id, "all", runner, NearlineSettings(chunk_size=args.chunk_size),
                          progress=False, model_version="fake-v1" if args.reasoner == "fake" else None)
    if args.json:
        print(json.dumps(asdict(summary)))


def _command(url: str, namespace: str, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "loadtests.reliability.nearline", "--url", url, "--namespace", namespace,
            "--job-id", "nightly", *extra]


def _run(url: str, namespace: str, extra: list[str], timeout_s: float) -> dict:
    done = subprocess.run(_command(url, namespace, [*extra, "--json"]), env=_env(), cwd=REPO_ROOT, timeout=timeout_s,
                          capture_output=True, text=True, start_new_session=True)
    if done.returncode != 0:
        raise RuntimeError(f"nearline job failed ({done.returncode}): {done.stderr[-1500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _env() -> dict[str, str]:
    return {**os.environ, **ENV, "PYTHONPATH": str(REPO_ROOT)}


def contents(store) -> dict[str, dict]:
    users = sorted(store.scan_users())
    return dict(zip(users, store.read(users), strict=True))


def run_nearline_kill(stack: Stack, users: int = 60, chunk_size: int = 5, seed: int | None = None,
                      reasoner: list[str] | None = None, timeout_s: float = 300.0) -> Scenario:
    """Reference job, then the same job SIGKILLed at a random chunk and resumed; compare the two stores."""
    from feature_store.checkpoints import JobCheckpoints
    from feature_store.materialize import materialize_histories
    from feature_store.store import FeatureStore
    from loadtests.reliability.harness import user_histories

    seed = random.randrange(2**31) if seed is None else seed
    rng = random.Random(seed)
    chunks = -(-users // chunk_size)
    target = rng.randint(1, chunks - 2)
    extra = ["--chunk-size", str(chunk_size), *(reasoner or ["--delay-s", "0.05"])]
    scenario = Scenario("nearline_kill", injected=f"SIGKILL of the job's process group after {target} of {chunks} "
                                                  f"chunks (+ a random part of a batch; seed {seed}), then a restart "
                                                  "with the same job id")
    with timed(scenario):
        histories = user_histories(users, "nearline")
        stores = {ns: FeatureStore(stack.redis.url, ns) for ns in ("rel_nl_ref", "rel_nl_killed")}
        for store in stores.values():
            store.purge()
            materialize_histories(store, histories.items(), updated_at=1.0)
        reference = _run(stack.redis.url, "rel_nl_ref", extra, timeout_s)
        checkpoints = JobCheckpoints(stores["rel_nl_killed"], "nightly")
        process = subprocess.Popen(_command(stack.redis.url, "rel_nl_killed", extra), env=_env(), cwd=REPO_ROOT,
                                   start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        while len(checkpoints.done()) < target and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.05))
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
        done_at_kill, finished_at_kill = checkpoints.done(), checkpoints.finished()
        resumed = _run(stack.redis.url, "rel_nl_killed", extra, timeout_s)
        ours, theirs = contents(stores["rel_nl_killed"]), contents(stores["rel_nl_ref"])
        for store in stores.values():
            store.close()
        _judge(scenario, ours, theirs, reference, resumed, done_at_kill, finished_at_kill, chunks, users)
    return scenario


def _judge(scenario: Scenario, ours: dict, theirs: dict, reference: dict, resumed: dict, done_at_kill: set[int],
           finished_at_kill: bool, chunks: int, users: int) -> None:
    def strip(row: dict | None) -> dict:
        return {k: v for k, v in (row or {}).items() if k != "updated_at"}

    same = sum(1 for user in theirs if strip(ours.get(user)) == strip(theirs[user]))
    fields = sum(len(strip(row)) for row in theirs.values())
    scenario.requests = 3  # job runs: reference, killed, resumed
    scenario.responses = {"reference": 1, "killed": 1, "resumed": 1}
    scenario.compared = (f"{users} user rows, {fields} fields, killed+resumed vs uninterrupted: {same}/{len(theirs)} "
                         "rows identical (all fields but the job's updated_at)")
    scenario.metrics = {"chunks": chunks, "done_at_kill": len(done_at_kill),
                        "chunks_skipped": resumed["chunks_skipped"], "resumed_users": resumed["users"],
                        "reference_written": reference["written"],
                        "resumed_written": resumed["written"], "resumed_stale": resumed["stale"]}
    scenario.check("killed mid-run (some chunks done, not finished)",
                   0 < len(done_at_kill) < chunks and not finished_at_kill)
    scenario.check("resume skipped every finished chunk", resumed["chunks_skipped"] == len(done_at_kill))
    scenario.check("same users as the uninterrupted run", ours.keys() == theirs.keys() and len(ours) == users)
    scenario.check("every row identical to the uninterrupted run", same == len(theirs) == users)
    scenario.check("one updated_at for the whole job", len({row["updated_at"] for row in ours.values()}) == 1)
    scenario.check("every user has a CoT", all(row.get("cot") for row in ours.values()))


if __name__ == "__main__":
    worker()
