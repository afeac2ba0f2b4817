"""FAISS index settings (DESIGN.md §6): which index kind, its knobs, and GPU use.

Defaults come from `benchmarks/nearline_faiss.py` (2 shared CPU cores, d=64, k=50,
normalised Gaussian-mixture items, one query at a time on one faiss thread):
- exact flat search costs ~0.3 ms at 10k items, ~4 ms at 100k (13 ms on a busy machine),
  ~28 ms at 1M: flat below `auto_threshold` = 50k keeps exact answers well under 5 ms;
- IVF-Flat (inner product), nlist = `auto_nlist(n)` ≈ sqrt(n), nprobe 64: 1M items build in
  ~15 s, answer in ~2.6 ms p50 / 3.6 ms p99 at recall@50 ≈ 0.99 (100k: 1.1 ms, 0.99); with the
  2 cores ~4x oversubscribed by other jobs the same run gave 29 s and 5.7 ms p50;
  nlist ≈ 4·sqrt(n) = 4096 took ~116 s to build 1M and gave less recall per ms;
- HNSW (m 32, efConstruction 40) took 33-49 s to build 100k items (a 1M build is predicted at
  ~7 min); efSearch 128 gave recall@50 0.92 at 100k, 256 gave 0.96 (1.1 ms). It stays available,
  but IVF is the kind `auto` picks.
Run single-query search with one OpenMP thread (OMP_NUM_THREADS=1, Ray's default for replicas):
on a busy 2-core machine a 2-thread faiss call made one flat query at 100k items ~6x slower.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Kind = Literal["flat", "hnsw", "ivf"]


class IndexSettings(BaseModel):
    """How `ItemIndex.build` makes its FAISS index. Frozen; a typo is an error.

    kind: "auto" -> "flat" for n < auto_threshold items, else `auto_kind`.
    HNSW: m (graph degree), ef_construction, ef_search.
    IVF: nlist (None -> `auto_nlist(n)`), nprobe, train_sample (max vectors k-means sees, at least 40·nlist).
    use_gpu: "auto" clones the index to every GPU when faiss sees one; "always" fails without one.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["auto", "flat", "hnsw", "ivf"] = "auto"
    auto_threshold: int = Field(50_000, ge=1)
    auto_kind: Literal["hnsw", "ivf"] = "ivf"
    m: int = Field(32, ge=4, le=128)
    ef_construction: int = Field(40, ge=8)
    ef_search: int = Field(256, ge=8)
    nlist: int | None = Field(None, ge=1)
    nprobe: int = Field(64, ge=1)
    train_sample: int = Field(64_000, ge=1_000)
    use_gpu: Literal["auto", "never", "always"] = "auto"

    def resolve_kind(self, n_items: int) -> Kind:
        """The concrete kind for an index of `n_items` items."""
        if self.kind != "auto":
            return self.kind
        return "flat" if n_items < self.auto_threshold else self.auto_kind

    def resolve_nlist(self, n_items: int) -> int:
        """Number of IVF lists: the setting, else `auto_nlist`; never more than n_items."""
        nlist = self.nlist if self.nlist is not None else auto_nlist(n_items)
        return max(1, min(nlist, n_items))


def auto_nlist(n_items: int) -> int:
    """≈ sqrt(n) lists (1M -> 1024), at least 1 and at most n/39 (faiss wants ≥ 39 training points a list).

    Measured at 1M items: nlist 1024 trains in ~4 s where 4·sqrt(n) = 4096 needs over a minute on 2 cores,
    and at equal latency gives the same recall (more lists, but more of them probed).
    """
    return max(1, min(1 << round(math.log2(max(1.0, math.sqrt(n_items)))), n_items // 39))
