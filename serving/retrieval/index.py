"""`ItemIndex`: top-K items by inner product for user vectors, raw string ids at the boundary (DESIGN.md §1, §6).

Reasoning mode: the Rechead turns a user into a vector u [d]; an item's score
is u · e_item, its row of `item_embeddings.npy`. FAISS stores int64 ids from
`IdMap`; callers only ever see raw item ids.

Add and remove work without a rebuild for every kind. flat and ivf remove
vectors natively; HNSW cannot delete graph nodes, so a removed HNSW item
becomes a *tombstone*: its node stays in the graph (searches still route
through it), its id leaves the id map, and search drops it from results.
`describe()` reports the tombstone count; `rebuilt()` makes a fresh index
without them.

Seen items (`exclude`) and tombstones are hidden from faiss by an id selector
on CPU and by over-fetching on GPU; a row comes back short only when the index
holds fewer eligible items (`serving/retrieval/search.py`).
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from serving.retrieval.factory import build_faiss_index, gpu_copy, hnsw_of, ivf_of
from serving.retrieval.idmap import IdMap
from serving.retrieval.search import search_rows
from serving.retrieval.settings import IndexSettings, Kind
from serving.retrieval.storage import read_index_dir, write_index_dir

Result = list[tuple[str, float]]


class ItemIndex:
    """Item vectors [n, dim] under raw string ids, searched by inner product. Thread-safe (one lock)."""

    def __init__(self, index: faiss.Index, kind: Kind, dim: int, settings: IndexSettings,
                 ids: IdMap | None = None, tombstones: Collection[int] = ()):
        self._index = index
        self.kind = kind
        self.dim = dim
        self.settings = settings
        self._ids = ids or IdMap()
        self._tombstones = {int(t) for t in tombstones}
        self._lock = threading.RLock()
        self._gpu: faiss.Index | None = None
        self._gpu_fresh = False

    @classmethod
    def build(cls, item_ids: Sequence[str], vectors: np.ndarray, settings: IndexSettings | None = None) -> ItemIndex:
        """An index over item_ids (n raw ids) with vectors [n, d]; kind per `settings.resolve_kind(n)`."""
        settings = settings or IndexSettings()
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape[1] < 1:
            raise ValueError(f"item vectors must be [n, d] with d >= 1, got shape {vectors.shape}")
        kind = settings.resolve_kind(len(item_ids))
        dim = int(vectors.shape[1])
        train = as_matrix(vectors, len(item_ids), dim) if kind == "ivf" else None
        out = cls(build_faiss_index(kind, dim, settings, train), kind, dim, settings)
        out.add_items(item_ids, vectors)
        out._refresh_gpu()
        return out

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._ids

    @property
    def item_ids(self) -> list[str]:
        """Raw ids of the live items, in the order they were added."""
        return list(self._ids)

    def add_items(self, item_ids: Sequence[str], vectors: np.ndarray) -> None:
        """Add new items: item_ids (m raw ids, none present yet, no repeats), vectors [m, dim].

        Nothing is added when a check fails (ValueError naming the id or the shape).
        """
        item_ids = _id_list(item_ids)
        x = as_matrix(vectors, len(item_ids), self.dim)
        with self._lock:
            self._ids.check_new(item_ids)
            ints = self._ids.assign(item_ids)
            try:
                if len(ints):
                    self._index.add_with_ids(x, ints)
            except BaseException:
                self._ids.drop(item_ids)
                raise
            self._gpu_fresh = False

    def remove_items(self, item_ids: Collection[str]) -> None:
        """Remove items (KeyError naming the first unknown id; then nothing is removed)."""
        with self._lock:
            unique = list(dict.fromkeys(_id_list(item_ids)))
            ints = self._ids.ints_of(unique)
            if self.kind == "hnsw":
                self._tombstones.update(ints.tolist())
            elif len(ints):
                removed = self._index.remove_ids(faiss.IDSelectorArray(ints))  # IVF hashtable needs an array
                if removed != len(ints):
                    raise RuntimeError(f"faiss removed {removed} of {len(ints)} vectors; the index is inconsistent")
            self._ids.drop(unique)
            self._gpu_fresh = False

    def vector(self, item_id: str) -> np.ndarray:
        """The stored vector [dim] of an item (KeyError naming it if absent)."""
        with self._lock:
            return self._index.reconstruct(int(self._ids.ints_of([item_id])[0]))

    def search(self, user_vectors: np.ndarray, k: int,
               exclude: Sequence[Collection[str]] | None = None) -> list[Result]:
        """Top-k (item id, score) per user, best first; score = u · e_item.

        user_vectors: [B, dim] (a single [dim] vector is read as B = 1); exclude: B collections of raw ids
        never to return (ids not in the index are ignored). A row holds fewer than k pairs only when the
        index has fewer than k eligible items.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        q = as_matrix(np.atleast_2d(np.asarray(user_vectors)), None, self.dim)
        if exclude is not None and len(exclude) != len(q):
            raise ValueError(f"exclude has {len(exclude)} rows for {len(q)} user vectors")
        if exclude is not None and any(isinstance(row, str) for row in exclude):
            raise TypeError("each exclude row is a collection of item ids, not one string")
        with self._lock:
            hidden = [set(self._ids.known_ints(row)) for row in exclude] if exclude else [set() for _ in q]
            wants = [min(k, len(self._ids) - len(h)) for h in hidden]
            if len(q) == 0 or max(wants) <= 0:
                return [[] for _ in range(len(q))]
            for h in hidden:
                h |= self._tombstones
            gpu = self._gpu if self._gpu_fresh else None
            rows = search_rows(self._index, q, k, hidden, wants, gpu)
            return [[(self._ids.str_of(i), score) for i, score in row] for row in rows]

    def _refresh_gpu(self) -> None:
        """(Re)clone the CPU index to the GPUs when the settings ask for it; mutations mark the clone stale."""
        self._gpu = gpu_copy(self._index, self.kind, self.settings.use_gpu)
        self._gpu_fresh = self._gpu is not None

    def sync_gpu(self) -> None:
        """Copy the current CPU index to the GPUs again (after adds/removes; until then searches use the CPU)."""
        with self._lock:
            self._refresh_gpu()

    def rebuilt(self) -> ItemIndex:
        """A fresh index of the live items with the same settings (drops HNSW tombstones)."""
        with self._lock:
            ids = self.item_ids
            vectors = self._index.reconstruct_batch(self._ids.ints_of(ids)) if ids else np.zeros((0, self.dim))
        return ItemIndex.build(ids, vectors, self.settings.model_copy(update={"kind": self.kind}))

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary: kind, sizes, metric, removal mode, tombstones, GPU, kind parameters."""
        out: dict[str, Any] = {
            "kind": self.kind, "dim": self.dim, "n_items": len(self), "ntotal": int(self._index.ntotal),
            "metric": "inner_product", "removal": "tombstone" if self.kind == "hnsw" else "native",
            "tombstones": len(self._tombstones), "gpu": self._gpu is not None,
            "gpu_stale": self._gpu is not None and not self._gpu_fresh,
            "settings": self.settings.model_dump(mode="json"),
        }
        if (ivf := ivf_of(self._index)) is not None:
            out.update(nlist=int(ivf.nlist), nprobe=int(ivf.nprobe))
        if (hnsw := hnsw_of(self._index)) is not None:
            out.update(m=self.settings.m, ef_search=int(hnsw.hnsw.efSearch))
        return out

    def save(self, directory: Path) -> None:
        """Write the faiss index and a JSON sidecar into `directory`, atomically (temp dir + rename)."""
        with self._lock:
            sidecar = {"kind": self.kind, "dim": self.dim, "settings": self.settings.model_dump(mode="json"),
                       "tombstones": sorted(self._tombstones), **self._ids.to_json()}
            write_index_dir(Path(directory), self._index, sidecar)

    @classmethod
    def load(cls, directory: Path) -> ItemIndex:
        """An index saved by `save` (ValueError when the sidecar and the faiss file disagree)."""
        index, doc = read_index_dir(Path(directory))
        ids = IdMap.from_json(doc)
        out = cls(index, doc["kind"], int(doc["dim"]), IndexSettings(**doc["settings"]), ids, doc["tombstones"])
        if index.d != out.dim or index.ntotal != len(ids) + len(out._tombstones):
            raise ValueError(f"{directory}: faiss index (d={index.d}, ntotal={index.ntotal}) does not match the "
                             f"sidecar (dim={out.dim}, {len(ids)} items + {len(out._tombstones)} tombstones)")
        out._refresh_gpu()
        return out


def _id_list(item_ids: Collection[str]) -> list[str]:
    """item_ids as a list; a bare string is refused (it would be read as one id per character)."""
    if isinstance(item_ids, str):
        raise TypeError(f"expected a collection of item ids, got the string {item_ids!r}")
    return list(item_ids)


def as_matrix(vectors: np.ndarray, n: int | None, dim: int) -> np.ndarray:
    """vectors as C-contiguous float32 [n, dim] (n=None: any); ValueError on another shape or non-finite values."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != dim or (n is not None and x.shape[0] != n):
        raise ValueError(f"expected vectors of shape [{'B' if n is None else n}, {dim}], got {tuple(x.shape)}")
    if not np.isfinite(x).all():
        raise ValueError("vectors contain NaN or infinite values")
    return x
