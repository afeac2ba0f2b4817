"""Reasoning mode online: the user's Redis row -> Rechead user vector -> FAISS top-k (DESIGN.md §1, rporec.txt §2.1.1).

`ReasoningService.recommend` takes the first path that applies (`ReasoningResult.path`):

| path            | when                                                     | work                                |
|-----------------|----------------------------------------------------------|-------------------------------------|
| `cached_vector` | the row's `user_vector` has the current `vector_version` | one HMGET, one FAISS search         |
| `cot`           | the row holds a CoT (nearline wrote `cot` + `answer`)    | MiniLM + Rechead, write-back, FAISS |
| `history_only`  | no CoT, fallback "history_only"; or Redis unavailable    | Rechead on the history, FAISS       |
| `direct`        | no CoT, fallback "direct"                                | none: the caller runs the engine    |
| `cold_start`    | no history in the request nor in Redis                   | none: caller answers pop./404       |

`fallback` is "no_cached_cot" when no CoT was cached (the user is then added to the nearline queue, see
serving/user_vectors.py), "redis_unavailable" when Redis could not be read (never an error: the request's
history answers), "cold_start" for a user without history.

Inputs (the same recipe as training, training/reasoning/features.py): the history text is the display titles
of the last `max_history` items (manifest `generation.max_history`), oldest first; the CoT text is the cached
`cot`; the answer is the first catalog item of the cached `answer` list (its embedding is the item's row of the
item text matrix), unparsed when there is none. History-only inputs are the featurizer's cot="none" inputs:
zero CoT and answer embeddings, parsed mask false. A bundle trained with cot="none" never reads the CoT.

vector_version = "<bundle_version>:<16 hex of sha256 over (kept history, CoT, answer item)>": a cached vector is
used only for the same bundle and the same inputs, e.g. a request history other than the stored one misses.
History: the request's when given (unknown ids -> RequestInvalid naming them), else the stored one (ids the
catalog lacks are dropped). exclude_seen excludes the whole history inside the FAISS search; items are distinct.

The FAISS index is `<bundle>/faiss_index/` when the bundle ships one (written before the manifest, as every
bundle file), else built at load from `item_embeddings.npy` (flat inner product below 100k items).
Blocking work (Redis, MiniLM, torch, FAISS) runs in `recommend_blocking`; `recommend` runs it in a thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from feature_store.errors import StoreError, StoreUnavailable
from feature_store.schema import decode_history, decode_vector
from feature_store.store import FeatureStore
from serving.engine import ScoredItem
from serving.items import known_items, refuse_unknown_items, title_of
from serving.retrieval import IndexSettings, ItemIndex
from serving.user_vectors import UserVectorStore
from training.bundle import BundleError, validate_bundle
from training.data.types import Sample
from training.inference import max_history
from training.models.text_encoder import TextEncoder
from training.reasoning.features import RecheadTexts, history_text

ITEM_INDEX_DIR = "faiss_index"
Fallback = Literal["direct", "history_only"]
ReasoningPath = Literal["cached_vector", "cot", "history_only", "direct", "cold_start"]


@dataclass(frozen=True)
class ReasoningResult:
    """items: best first (empty for paths "direct" and "cold_start"); history: the history used (the caller's
    direct fallback reuses it); cot_hit: whether Redis held a CoT (None when Redis was not read);
    timings: seconds spent per dependency ("redis", "faiss")."""

    items: list[ScoredItem]
    path: ReasoningPath
    fallback: str | None
    explanation: str | None
    model_version: str
    history: tuple[str, ...] = ()
    cot_hit: bool | None = None
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class UserInputs:
    """What a user vector is computed from: the kept history (oldest first), the CoT text, the answer item."""

    history: tuple[str, ...]
    cot: str | None = None
    answer_item: str | None = None

    def sha(self) -> str:
        payload = json.dumps([list(self.history), self.cot, self.answer_item], separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@contextmanager
def timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Adds the block's wall time to timings[name] (also when it raises)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


class ReasoningService:
    """A Rechead bundle (`RecheadRecommender`), a FAISS `ItemIndex` over its item matrix, and the feature store.

    store: None runs without Redis (every request is history-only, fallback "redis_unavailable").
    fallback: what a user without cached CoT gets (per call overridable), see the module docstring.
    """

    def __init__(self, recommender, index: ItemIndex, store: FeatureStore | None = None,
                 fallback: Fallback = "history_only"):
        self.recommender, self.index, self.fallback = recommender, index, fallback
        self.catalog, self.featurizer, self.model = recommender.catalog, recommender.featurizer, recommender.model
        self.manifest: dict = getattr(recommender, "manifest", None) or {}
        self.bundle_version = str(self.manifest.get("bundle_version", "unknown"))
        self.keep = max_history(recommender)
        self.vectors = UserVectorStore(store) if store is not None else None
        self.warmed = False

    @classmethod
    def from_bundle(cls, bundle_dir: str | Path, store: FeatureStore | None = None, *, device: str = "cpu",
                    expected_version: str | None = None, fallback: Fallback = "history_only",
                    encoder: TextEncoder | None = None, index_settings: IndexSettings | None = None
                    ) -> ReasoningService:
        """Load and validate a `rechead` bundle (BundleError for another kind or an unpinned version).

        encoder: the text encoder for CoT and history texts (default: MiniLM, loaded now)."""
        from training.models.text_encoder import load_text_encoder
        from training.reasoning.rechead_recommender import load_rechead_recommender

        root = Path(bundle_dir)
        manifest = validate_bundle(root)
        if manifest.get("kind") != "rechead":
            raise BundleError(f"{root}: reasoning mode serves rechead bundles, not {manifest.get('kind')!r}")
        if expected_version and manifest.get("bundle_version") != expected_version:
            raise BundleError(f"{root}: bundle_version {manifest.get('bundle_version')!r}, the serve config pins "
                              f"{expected_version!r}")
        recommender = load_rechead_recommender(root, manifest, device, encoder=encoder or load_text_encoder())
        recommender.manifest = manifest
        return cls(recommender, load_item_index(root, recommender, index_settings), store, fallback)

    async def recommend(self, user_id: str, history: Sequence[str] | None, k: int, exclude_seen: bool = True,
                        fallback: Fallback | None = None, explain: bool = False) -> ReasoningResult:
        """`recommend_blocking` in a worker thread, so the event loop never waits on Redis, torch or FAISS."""
        return await asyncio.to_thread(self.recommend_blocking, user_id, history, k, exclude_seen, fallback, explain)

    def recommend_blocking(self, user_id: str, history: Sequence[str] | None, k: int, exclude_seen: bool = True,
                           fallback: Fallback | None = None, explain: bool = False) -> ReasoningResult:
        """Top-k for one user by the first path that applies (module docstring); RequestInvalid for unknown ids."""
        timings: dict[str, float] = {}
        asked = None if history is None else tuple(history)
        if asked is not None:
            refuse_unknown_items(self.catalog, asked)
        try:
            row = self._read(user_id, timings)
        except StoreUnavailable:
            return self._history_only_result(asked or (), k, exclude_seen, "redis_unavailable", timings, None)
        stored = row or {}
        resolved = asked if asked is not None else self._stored_history(stored)
        if not resolved:
            return ReasoningResult([], "cold_start", "cold_start", None, self.bundle_version, (), False, timings)
        if not stored.get("cot"):
            return self._without_cot(user_id, row, resolved, k, exclude_seen, fallback or self.fallback, timings)
        return self._with_cot(user_id, stored, resolved, k, exclude_seen, explain, timings)

    def _with_cot(self, user_id: str, stored: dict[str, str], history: tuple[str, ...], k: int, exclude_seen: bool,
                  explain: bool, timings: dict[str, float]) -> ReasoningResult:
        """The cached vector when current, else one computed from the CoT (and written back); then FAISS."""
        inputs = self.inputs_of(history, stored["cot"], stored.get("answer"))
        version = self.vector_version(inputs)
        vector, path = self._cached_vector(stored, version), "cached_vector"
        if vector is None:
            vector, path = self.user_vectors([inputs])[0], "cot"
            self._write_back(user_id, stored, vector, version, timings)
        items = self._search(vector, k, history if exclude_seen else (), timings)
        explanation = stored["cot"] if explain else None
        return ReasoningResult(items, path, None, explanation, self.bundle_version, history, True, timings)

    def _without_cot(self, user_id: str, row: dict | None, history: tuple[str, ...], k: int, exclude_seen: bool,
                     fallback: Fallback, timings: dict[str, float]) -> ReasoningResult:
        """No cached CoT: queue the user (when Redis knows them), then the fallback."""
        if row is not None and self.vectors is not None:
            try:
                with timed(timings, "redis"):
                    self.vectors.enqueue([user_id])
            except StoreUnavailable:
                pass  # best effort: the answer does not depend on it
        if fallback == "direct":
            return ReasoningResult([], "direct", "no_cached_cot", None, self.bundle_version, history, False, timings)
        return self._history_only_result(history, k, exclude_seen, "no_cached_cot", timings, False)

    def _history_only_result(self, history: tuple[str, ...], k: int, exclude_seen: bool, reason: str,
                             timings: dict[str, float], cot_hit: bool | None) -> ReasoningResult:
        if not history:
            return ReasoningResult([], "cold_start", reason, None, self.bundle_version, (), cot_hit, timings)
        items = self.history_only(history, k, exclude_seen, timings)
        return ReasoningResult(items, "history_only", reason, None, self.bundle_version, history, cot_hit, timings)

    def history_only(self, history: Sequence[str], k: int, exclude_seen: bool = True,
                     timings: dict[str, float] | None = None) -> list[ScoredItem]:
        """Top-k from the Rechead on the history alone (catalog ids, oldest first)."""
        history = tuple(history)
        vector = self.user_vectors([self.inputs_of(history)])[0]
        return self._search(vector, k, history if exclude_seen else (), {} if timings is None else timings)

    def inputs_of(self, history: Sequence[str], cot: str | None = None, answer: str | None = None) -> UserInputs:
        """UserInputs from a history and the cached `cot` / `answer` (JSON list of item ids, best first)."""
        kept = tuple(history)[-self.keep:]
        if cot is None or self.featurizer.cot == "none":
            return UserInputs(kept)
        return UserInputs(kept, cot, self._answer_item(answer))

    def vector_version(self, inputs: UserInputs) -> str:
        return f"{self.bundle_version}:{inputs.sha()}"

    @torch.inference_mode()
    def user_vectors(self, inputs: Sequence[UserInputs]) -> np.ndarray:
        """h_u (rporec.txt Eq. 4) per user: float32 [n, d]."""
        texts = [RecheadTexts(self._history_text(u.history), u.cot, u.answer_item) for u in inputs]
        emb = self.featurizer.embed(texts).to(self.recommender.device)
        users = self.model.encode_user(emb.history_emb, emb.cot_emb, emb.answer_emb, emb.answer_parsed)
        return users.float().cpu().numpy()

    def compute_user_vectors(self, store: FeatureStore, user_ids: Sequence[str], batch_size: int = 256) -> int:
        """Compute and write `user_vector`/`vector_version` for those of `user_ids` with a stored history and CoT
        whose vector is missing or stale (a nearline step); returns how many vectors were written."""
        vectors = UserVectorStore(store)
        todo = []
        for user_id, row in zip(user_ids, vectors.read(user_ids), strict=True):
            history = self._stored_history(row or {})
            if not row or not row.get("cot") or not history:
                continue
            inputs = self.inputs_of(history, row["cot"], row.get("answer"))
            if row.get("vector_version") != self.vector_version(inputs):
                todo.append((user_id, row["updated_at"], inputs))
        written = 0
        for start in range(0, len(todo), batch_size):
            part = todo[start:start + batch_size]
            computed = self.user_vectors([inputs for _, _, inputs in part])
            written += vectors.write_vectors([(u, stamp, vec, self.vector_version(inputs))
                                              for (u, stamp, inputs), vec in zip(part, computed, strict=True)])
        return written

    def describe(self) -> dict:
        """JSON-ready facts for /v1/models."""
        return {"engine": "rechead+faiss", "bundle": self.manifest.get("name", "rechead"), "kind": "rechead",
                "bundle_version": self.bundle_version, "n_items": len(self.index), "index_kind": self.index.kind,
                "dim": self.index.dim, "cot": self.featurizer.cot, "fallback": self.fallback,
                "max_history": self.keep}

    def warm(self) -> None:
        """One history-only query, so the first request pays no lazy start-up (text encoder, torch, FAISS)."""
        self.history_only((self.catalog.id_at(0),), 1)
        self.warmed = True

    def _read(self, user_id: str, timings: dict[str, float]) -> dict[str, str] | None:
        if self.vectors is None:
            raise StoreUnavailable("no feature store configured")
        with timed(timings, "redis"):
            return self.vectors.read([user_id])[0]

    def _stored_history(self, row: dict[str, str]) -> tuple[str, ...]:
        try:
            return known_items(self.catalog, decode_history(row["history"])) if row.get("history") else ()
        except StoreError:
            return ()

    def _answer_item(self, answer: str | None) -> str | None:
        """The first catalog item of the cached answer list (a bare id is read as a list of one)."""
        try:
            items = json.loads(answer) if answer else []
        except json.JSONDecodeError:
            items = [answer]
        items = items if isinstance(items, list) else [items]
        return next((str(i) for i in items if str(i) in self.catalog), None)

    def _cached_vector(self, stored: dict[str, str], version: str) -> np.ndarray | None:
        if stored.get("vector_version") != version or not stored.get("user_vector"):
            return None
        try:
            return decode_vector(stored["user_vector"], self.index.dim)
        except StoreError:
            return None

    def _write_back(self, user_id: str, stored: dict[str, str], vector: np.ndarray, version: str,
                    timings: dict[str, float]) -> None:
        if self.vectors is None or not stored.get("updated_at"):
            return
        try:
            with timed(timings, "redis"):
                self.vectors.write_vectors([(user_id, stored["updated_at"], vector, version)])
        except StoreUnavailable:
            pass  # best effort: the next request computes it again

    def _history_text(self, history: tuple[str, ...]) -> str:
        return history_text(Sample("request", "request", history, ""), self.catalog)

    def _search(self, vector: np.ndarray, k: int, exclude: Sequence[str],
                timings: dict[str, float]) -> list[ScoredItem]:
        with timed(timings, "faiss"):
            pairs = self.index.search(vector[None, :], k, [set(exclude)] if exclude else None)[0]
        return [ScoredItem(item, title_of(self.catalog, item), score) for item, score in pairs]


def load_item_index(root: Path, recommender, settings: IndexSettings | None = None) -> ItemIndex:
    """`<bundle>/faiss_index/` when present (checked against the item matrix), else built from the matrix."""
    matrix = recommender.item_matrix
    folder = Path(root) / ITEM_INDEX_DIR
    if (folder / "index.json").is_file():
        index = ItemIndex.load(folder)
        if index.dim != matrix.shape[1]:
            raise BundleError(f"{folder}: index of {index.dim}-d vectors, the Rechead's are {matrix.shape[1]}-d")
        return index
    return ItemIndex.build(recommender.catalog.item_ids, matrix, settings or IndexSettings())
