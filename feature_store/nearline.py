"""The nearline CoT job: select users, reason over them in chunks, write Redis, checkpoint each chunk.

Exactly-once in effect (DESIGN.md §6): the job's plan (users in chunks, one `updated_at` for all its writes)
is stored under `<ns>:job:<id>` when the job begins and reused when a job of the same id restarts; a chunk's
checkpoint is written only after all its rows, and rows go through the store's newer-wins guard, so a job
killed at any point and restarted skips finished chunks, rewrites the rest, and ends with the same store
contents as an uninterrupted run. Decoding is greedy, so a chunk written twice holds the same CoTs.

Plain classes only; the Ray Data runner is a thin shell in `nearline_ray.py`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from feature_store.checkpoints import JobCheckpoints
from feature_store.reasoner import ReasonerSettings
from feature_store.schema import UserFeatures, decode_history, encode_history, history_sha, queue_key
from feature_store.store import FeatureStore

USER_SPECS = ("changed", "all", "queue")
Batch = dict  # column name -> numpy array, as Ray Data's numpy batch format


@dataclass(frozen=True)
class NearlineSettings:
    chunk_size: int = 256
    pool_size: int = 1  # vLLM actors (Ray runner)
    reasoner: ReasonerSettings = field(default_factory=ReasonerSettings)

    def __post_init__(self) -> None:
        if self.chunk_size < 1 or self.pool_size < 1:
            raise ValueError(f"chunk_size and pool_size must be >= 1, got {self.chunk_size}, {self.pool_size}")


@dataclass(frozen=True)
class JobPlan:
    job_id: str
    updated_at: float
    model_version: str
    chunks: tuple[tuple[str, ...], ...]

    @property
    def n_users(self) -> int:
        return sum(len(c) for c in self.chunks)


def needs_cot(row: dict[str, str] | None) -> bool:
    """True when the user has a history and no CoT written for exactly this history."""
    if not row or not row.get("history"):
        return False
    return row.get("cot_history_sha") != history_sha(decode_history(row["history"]))


def select_users(store: FeatureStore, spec: str) -> list[str]:
    """User ids, sorted: `changed` (history differs from the one of the cached CoT), `all` (any history),
    `queue` (users serving queued for a CoT, that have a history), or a file with one user id per line."""
    if spec not in USER_SPECS:
        path = Path(spec)
        if not path.is_file():
            raise ValueError(f"--users must be one of {list(USER_SPECS)} or a file of user ids; {spec!r} is neither")
        return sorted({line.strip() for line in path.read_text().splitlines() if line.strip()})
    users = sorted(queued_users(store) if spec == "queue" else store.scan_users())
    rows = store.read(users, ("history", "cot_history_sha"))
    keep = needs_cot if spec == "changed" else (lambda row: bool(row and row.get("history")))
    return [user for user, row in zip(users, rows, strict=True) if keep(row)]


def queued_users(store: FeatureStore) -> set[str]:
    return store.with_retries("read the nearline queue", lambda: store.client.smembers(queue_key(store.namespace)))


def dequeue(store: FeatureStore, users: Sequence[str]) -> None:
    """Takes users whose CoT is now written off the queue."""
    key = queue_key(store.namespace)
    for start in range(0, len(users), 1000):
        part = list(users[start:start + 1000])
        store.with_retries("update the nearline queue", lambda p=part: store.client.srem(key, *p))


def users_fingerprint(spec: str) -> str:
    """What the user asked for: the spec word, or the file's path and content hash."""
    if spec in USER_SPECS:
        return spec
    return f"{Path(spec).resolve()}:{hashlib.sha256(Path(spec).read_bytes()).hexdigest()[:16]}"


def plan_job(store: FeatureStore, job_id: str, model_version: str, users_spec: str,
             settings: NearlineSettings, now: Callable[[], float] = time.time) -> JobPlan:
    """The job's plan: a new one stored under the job id, or the stored one when the job id exists."""
    fingerprint = hashlib.sha256(json.dumps(
        {"model_version": model_version, "users": users_fingerprint(users_spec),
         "settings": asdict(settings) | {"pool_size": None}}, sort_keys=True).encode()).hexdigest()[:16]
    checkpoints = JobCheckpoints(store, job_id)
    users = select_users(store, users_spec)
    chunks = [users[i:i + settings.chunk_size] for i in range(0, len(users), settings.chunk_size)]
    meta = checkpoints.begin({"fingerprint": fingerprint, "updated_at": repr(now()), "model_version": model_version,
                              "chunks": json.dumps(chunks)})
    return JobPlan(job_id, float(meta["updated_at"]), meta["model_version"],
                   tuple(tuple(c) for c in json.loads(meta["chunks"])))


def pending_rows(store: FeatureStore, plan: JobPlan, done: set[int]) -> list[dict[str, object]]:
    """Input rows of the chunks not yet finished: user_id, history (JSON), history_sha, chunk_id."""
    rows = []
    for chunk_id, users in enumerate(plan.chunks):
        if chunk_id in done:
            continue
        for user, stored in zip(users, store.read(list(users), ("history",)), strict=True):
            history = decode_history(stored["history"]) if stored and stored.get("history") else []
            rows.append({"user_id": user, "history": encode_history(history), "history_sha": history_sha(history),
                         "chunk_id": chunk_id})
    return rows


@dataclass
class JobCounters:
    users: int = 0
    cot_tokens: int = 0
    unclosed: int = 0
    empty_answers: int = 0
    written: int = 0
    stale: int = 0

    def add_row(self, closed: bool, cot_tokens: int, answer: Sequence[str]) -> None:
        self.users += 1
        self.cot_tokens += int(cot_tokens)
        self.unclosed += int(not closed)
        self.empty_answers += int(not answer)

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


class ChunkWriter:
    """Writes reasoned rows as they arrive and checkpoints a chunk once all its rows are in Redis."""

    def __init__(self, store: FeatureStore, checkpoints: JobCheckpoints, plan: JobPlan, done: set[int]):
        self.store, self.checkpoints, self.plan = store, checkpoints, plan
        self.missing = {c: len(users) for c, users in enumerate(plan.chunks) if c not in done}
        self.chunk_counters = {c: JobCounters() for c in self.missing}
        self.total = JobCounters()
        for chunk_id in [c for c, n in self.missing.items() if n == 0]:
            self._finish_chunk(chunk_id)

    def write(self, batch: Batch) -> int:
        """Writes one output batch; returns how many chunks it finished."""
        rows, finished = [], 0
        for i in range(len(batch["user_id"])):
            answer = json.loads(str(batch["answer"][i]))
            rows.append(UserFeatures(str(batch["user_id"][i]), self.plan.updated_at, {
                "cot": str(batch["cot"][i]), "answer": json.dumps(answer), "model_version": self.plan.model_version,
                "job_id": self.plan.job_id, "cot_history_sha": str(batch["history_sha"][i])}))
            counters = self.chunk_counters[int(batch["chunk_id"][i])]
            for c in (counters, self.total):
                c.add_row(bool(batch["closed"][i]), int(batch["cot_tokens"][i]), answer)
        result = self.store.write(rows)
        self.total.written += result.written
        self.total.stale += result.stale
        for i in range(len(batch["user_id"])):
            chunk_id = int(batch["chunk_id"][i])
            self.missing[chunk_id] -= 1
            if self.missing[chunk_id] == 0:
                self._finish_chunk(chunk_id)
                finished += 1
        return finished

    def _finish_chunk(self, chunk_id: int) -> None:
        self.checkpoints.mark_done(chunk_id, self.chunk_counters[chunk_id].as_dict())
        del self.missing[chunk_id]

    @property
    def complete(self) -> bool:
        return not self.missing


Runner = Callable[[str, NearlineSettings, list[dict[str, object]]], Iterable[Batch]]


@dataclass(frozen=True)
class JobSummary:
    job_id: str
    users: int
    chunks: int
    chunks_skipped: int
    seconds: float
    users_per_s: float
    tokens_per_s: float
    unclosed_rate: float
    empty_answer_rate: float
    written: int
    stale: int


def run_job(store: FeatureStore, bundle_dir: str, job_id: str, users_spec: str, runner: Runner,
            settings: NearlineSettings | None = None, progress: bool = True,
            model_version: str | None = None) -> JobSummary:
    """Plans (or resumes) job `job_id`, reasons over the pending chunks through `runner`, writes Redis.

    model_version: written with every CoT; None reads the bundle's version (and checks it is a reasoning bundle).
    """
    from feature_store.reasoner import model_version_of

    settings = settings or NearlineSettings()
    start = time.perf_counter()
    store.ensure_schema()
    version = model_version or model_version_of(str(bundle_dir), settings.reasoner)
    plan = plan_job(store, job_id, version, users_spec, settings)
    checkpoints = JobCheckpoints(store, job_id)
    done = checkpoints.done()
    writer = ChunkWriter(store, checkpoints, plan, done)
    rows = pending_rows(store, plan, done)
    for batch in _with_progress(runner(bundle_dir, settings, rows) if rows else [], len(rows), progress):
        writer.write(batch)
    if not writer.complete:
        raise RuntimeError(f"job {job_id}: the runner returned before every chunk was written "
                           f"({len(writer.missing)} chunks missing); run it again with the same --job-id")
    seconds = time.perf_counter() - start
    t = writer.total
    summary = JobSummary(job_id, t.users, len(plan.chunks), len(done), seconds, t.users / seconds,
                         t.cot_tokens / seconds, t.unclosed / max(t.users, 1), t.empty_answers / max(t.users, 1),
                         t.written, t.stale)
    checkpoints.finish(asdict(summary))
    if users_spec == "queue":
        dequeue(store, [user for chunk in plan.chunks for user in chunk])
    return summary


def _with_progress(batches: Iterable[Batch], total: int, progress: bool) -> Iterator[Batch]:
    from tqdm import tqdm

    with tqdm(total=total, unit="user", desc="nearline", disable=not progress) as bar:
        tokens = 0
        for batch in batches:
            tokens += int(sum(batch["cot_tokens"]))
            bar.update(len(batch["user_id"]))
            bar.set_postfix(tokens_per_s=f"{tokens / max(bar.format_dict['elapsed'], 1e-9):.0f}")
            yield batch


def local_runner(bundle_dir: str, settings: NearlineSettings, rows: list[dict[str, object]]) -> Iterator[Batch]:
    """In-process runner (no Ray): one engine, one chunk-sized batch at a time."""
    import numpy as np

    from feature_store.reasoner import build_reasoner, reason_batch

    reasoner = build_reasoner(bundle_dir, settings.reasoner)
    for start in range(0, len(rows), settings.chunk_size):
        part = rows[start:start + settings.chunk_size]
        yield reason_batch(reasoner, {key: np.array([r[key] for r in part], dtype=object) for key in part[0]})
