"""Empty FAISS indexes per kind, inner-product metric, int64 ids (DESIGN.md §6).

- flat: `IndexIDMap2(IndexFlatIP)`: exact; `remove_ids` compacts the store (O(n) per call).
- ivf: `IndexIVFFlat` (IP) holding our int64 ids itself, with a hashtable direct map so
  `reconstruct` and `remove_ids` work by id. (An IDMap2 wrapper would break on removal:
  IVF does not renumber its internal ids the way IDMap expects.)
- hnsw: `IndexIDMap2(IndexHNSWFlat)` (IP). HNSW cannot delete graph nodes, so
  `ItemIndex` removes HNSW items by tombstone (see `serving/retrieval/index.py`).
"""

from __future__ import annotations

import faiss
import numpy as np

from serving.retrieval.settings import IndexSettings, Kind


def build_faiss_index(kind: Kind, dim: int, settings: IndexSettings, train: np.ndarray | None = None) -> faiss.Index:
    """An empty index of `kind` for `dim`-d vectors; IVF is trained on `train` [n, dim] first."""
    if kind == "flat":
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    if kind == "hnsw":
        return _hnsw(dim, settings)
    if kind == "ivf":
        return _ivf(dim, settings, train)
    raise ValueError(f"unknown index kind {kind!r}")


def _hnsw(dim: int, settings: IndexSettings) -> faiss.Index:
    inner = faiss.IndexHNSWFlat(dim, settings.m, faiss.METRIC_INNER_PRODUCT)
    inner.hnsw.efConstruction = settings.ef_construction
    inner.hnsw.efSearch = settings.ef_search
    return faiss.IndexIDMap2(inner)  # the python wrapper keeps a reference to `inner`


def _ivf(dim: int, settings: IndexSettings, train: np.ndarray | None) -> faiss.Index:
    if train is None or len(train) == 0:
        raise ValueError("an IVF index needs vectors to train on; build it with items (or use kind='flat')")
    nlist = settings.resolve_nlist(len(train))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = 1234
    rows = np.random.default_rng(0).permutation(len(train))[: max(settings.train_sample, 40 * nlist)]
    index.train(np.ascontiguousarray(train[np.sort(rows)], dtype=np.float32))
    index.set_direct_map_type(faiss.DirectMap.Hashtable)
    index.nprobe = settings.nprobe
    return index


def hnsw_of(index: faiss.Index) -> faiss.IndexHNSW | None:
    """The HNSW index inside an `IndexIDMap2`, else None."""
    inner = faiss.downcast_index(index.index) if hasattr(index, "id_map") else None
    return inner if isinstance(inner, faiss.IndexHNSW) else None


def ivf_of(index: faiss.Index) -> faiss.IndexIVF | None:
    """`index` itself when it is an IVF index, else None."""
    index = faiss.downcast_index(index)
    return index if isinstance(index, faiss.IndexIVF) else None


def gpu_count() -> int:
    """GPUs faiss can use (0 with faiss-cpu)."""
    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


def gpu_copy(index: faiss.Index, kind: Kind, use_gpu: str) -> faiss.Index | None:
    """A GPU clone of `index` on every GPU (`index_cpu_to_all_gpus`), or None when it stays on CPU.

    "auto": GPU when faiss sees one and the kind has a GPU form (flat, ivf; faiss has no GPU HNSW).
    "always": the same, but a missing GPU or an HNSW index is an error.
    """
    if use_gpu == "never":
        return None
    reason = None
    if gpu_count() == 0:
        reason = "faiss sees no GPU (install the gpu extra, faiss-gpu, on a machine with CUDA)"
    elif kind == "hnsw":
        reason = "faiss has no GPU HNSW index; use kind='flat' or 'ivf'"
    if reason is None:
        return faiss.index_cpu_to_all_gpus(index)
    if use_gpu == "always":
        raise RuntimeError(f"use_gpu='always' but {reason}")
    return None
