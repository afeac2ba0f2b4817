"""FAISS index settings (DESIGN.md §6): which index kind, its knobs, and GPU use.

Defaults come from `benchmarks/nearline_faiss.py` on 2 CPU cores, d=64,
normalised Gaussian-mixture items (see the numbers in that module's docstring):
exact flat search stays under ~5 ms per query up to a few ten thousand
items and grows linearly; above `auto_threshold` IVF-Flat (inner product) with
nlist ≈ sqrt(n) and nprobe 32 builds 1M items in ~15 s and answers top-50 in
~1-2 ms at recall@50 ≈ 0.97, while HNSW needs minutes to build 1M items.
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
    IVF: nlist (None -> `auto_nlist(n)`), nprobe, train_sample (max vectors k-means sees).
    use_gpu: "auto" clones the index to every GPU when faiss sees one; "always" fails without one.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["auto", "flat", "hnsw", "ivf"] = "auto"
    auto_threshold: int = Field(100_000, ge=1)
    auto_kind: Literal["hnsw", "ivf"] = "ivf"
    m: int = Field(32, ge=4, le=128)
    ef_construction: int = Field(40, ge=8)
    ef_search: int = Field(128, ge=8)
    nlist: int | None = Field(None, ge=1)
    nprobe: int = Field(32, ge=1)
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
