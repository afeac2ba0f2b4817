"""RQ-KMeans semantic IDs (gream.txt §3.1.2, Eq. 4-8; MiniOneRec-style codebooks).

Residual k-means over item-text embeddings: level l clusters the residuals
R^(l) (R^(1) = e_i), assigns s_i^(l) = argmin_k ||R_i^(l) - c_k^(l)|| (Eq. 6) and
passes on R^(l+1) = R^(l) - c_{s_i^(l)}^(l) (Eq. 7). Items that share all L codes
get one extra disambiguation level (0, 1, 2, ... in item order), so every
item has a unique id of depth L+1. Each (level, code) pair is its own token,
`<s{level}_{code}>`, so levels never share tokens (DESIGN.md §4).

`balanced=True` replaces the nearest-centroid step by a capacity-constrained
assignment (cap ceil(n/K) items per code), which evens out cluster sizes
(DESIGN.md §8: plain 3x32 codes gave clusters of 3 to 173 items).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from training.identifiers.base import IdentifierScheme, register_scheme
from training.identifiers.kmeans import kmeans, nearest

if TYPE_CHECKING:
    from training.catalog import Catalog

CENTROIDS_FILE = "centroids.npz"


def sid_token(level: int, code: int) -> str:
    """Token string of `code` at `level` (0-based), e.g. `<s1_3>`."""
    return f"<s{level}_{code}>"


def sid_code(token: str) -> int:
    """The code of a token written by `sid_token`: `<s1_3>` -> 3."""
    return int(token[token.index("_") + 1: -1])


def codes_to_tokens(codes: Sequence[int]) -> tuple[str, ...]:
    """One token per level: (1, 0, 2) -> ("<s0_1>", "<s1_0>", "<s2_2>")."""
    return tuple(sid_token(level, int(c)) for level, c in enumerate(codes))


def default_codebook(n_items: int) -> tuple[int, int]:
    """(n_levels, n_codes) for a catalog size: 3 levels up to 100k items, else 4; K a power of two
    near 2 * n^(1/L), in [2, 256] and <= n_items. ~1.7k items -> (3, 32)."""
    n_levels = 3 if n_items <= 100_000 else 4
    target = 2 * math.ceil(n_items ** (1 / n_levels))
    n_codes = min(256, max(2, 1 << (target - 1).bit_length()))
    return n_levels, max(1, min(n_codes, n_items))


def fit_residual_kmeans(
    emb: np.ndarray,
    n_levels: int,
    n_codes: int | Sequence[int],
    seed: int = 0,
    balanced: bool = False,
    n_iter: int = 25,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Residual k-means (gream.txt Eq. 4-8).

    emb: [n, d]; n_codes: K for every level, or one K per level (each clamped to <= n).
    Returns codes [n, n_levels] int64 and centroids, one [K_l, d] float32 array per level.
    Deterministic for a given seed.
    """
    x = np.asarray(emb, dtype=np.float64)
    sizes = [n_codes] * n_levels if isinstance(n_codes, int) else list(n_codes)
    if len(sizes) != n_levels:
        raise ValueError(f"{len(sizes)} codebook sizes for {n_levels} levels")
    codes = np.zeros((len(x), n_levels), dtype=np.int64)
    centroids: list[np.ndarray] = []
    residual = x.copy()
    for level, k in enumerate(sizes):
        c, assign = kmeans(residual, min(k, len(x)), seed=seed + level, n_iter=n_iter, balanced=balanced)
        codes[:, level] = assign
        centroids.append(c.astype(np.float32))
        residual = residual - c[assign]
    return codes, centroids


def encode_residual(emb: np.ndarray, centroids: list[np.ndarray]) -> np.ndarray:
    """Nearest-centroid codes level by level (Eq. 6-7) for new items. emb: [m, d] -> [m, L]."""
    residual = np.asarray(emb, dtype=np.float64)
    codes = np.zeros((len(residual), len(centroids)), dtype=np.int64)
    for level, c in enumerate(centroids):
        c64 = c.astype(np.float64)
        codes[:, level] = nearest(residual, c64)
        residual = residual - c64[codes[:, level]]
    return codes


def residual_norms(emb: np.ndarray, codes: np.ndarray, centroids: list[np.ndarray]) -> list[float]:
    """Mean L2 norm of the residual before level 1, ..., L and after level L: L+1 floats."""
    residual = np.asarray(emb, dtype=np.float64)
    norms = [float(np.linalg.norm(residual, axis=1).mean())]
    for level, c in enumerate(centroids):
        residual = residual - c.astype(np.float64)[codes[:, level]]
        norms.append(float(np.linalg.norm(residual, axis=1).mean()))
    return norms


def collision_rate(codes: np.ndarray) -> float:
    """Share of items whose code tuple (row of codes [n, L]) is shared with another item."""
    if len(codes) == 0:
        return 0.0
    counts = Counter(map(tuple, np.asarray(codes).tolist()))
    return sum(c for c in counts.values() if c > 1) / len(codes)


def disambiguate(codes: np.ndarray) -> np.ndarray:
    """Append a level that makes rows unique: [n, L] -> [n, L+1].

    Items sharing all L codes get 0, 1, 2, ... in row order; unique items get 0.
    The new level's codebook size is the largest collision group.
    """
    seen: Counter[tuple[int, ...]] = Counter()
    extra = np.zeros((len(codes), 1), dtype=np.int64)
    for row, key in enumerate(map(tuple, np.asarray(codes).tolist())):
        extra[row, 0] = seen[key]
        seen[key] += 1
    return np.concatenate([np.asarray(codes, dtype=np.int64).reshape(len(codes), -1), extra], axis=1)


def level_cluster_sizes(codes: np.ndarray) -> list[dict[str, float]]:
    """Per level: min / max / mean number of items per used code. codes: [n, L]."""
    out = []
    for level in range(codes.shape[1]):
        n = np.bincount(codes[:, level])
        n = n[n > 0]
        out.append(dict(used_codes=len(n), min=int(n.min()), max=int(n.max()), mean=float(n.mean())))
    return out


@register_scheme("sid")
class SemanticIdScheme(IdentifierScheme):
    """RQ-KMeans semantic IDs with a disambiguation level.

    item_ids: n raw ids; codes: [n, L+1] (last column = disambiguation);
    centroids: L arrays [K_l, d]; codebook_sizes: L+1 ints (last = disambiguation size).
    """

    def __init__(
        self,
        item_ids: Sequence[str],
        codes: np.ndarray,
        centroids: list[np.ndarray],
        codebook_sizes: Sequence[int],
        fit_info: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.centroids = [np.asarray(c, dtype=np.float32) for c in centroids]
        self.codebook_sizes = [int(k) for k in codebook_sizes]
        self.fit_info = dict(fit_info or {})
        for item_id, row in zip(item_ids, np.asarray(codes).tolist(), strict=True):
            self._put(item_id, tuple(int(c) for c in row))

    @classmethod
    def build(
        cls, catalog: Catalog, embeddings: np.ndarray | None = None, **options: Any
    ) -> SemanticIdScheme:
        """options: n_levels, n_codes, seed, balanced, n_iter (see `fit`)."""
        if embeddings is None:
            raise ValueError("semantic IDs need item embeddings [len(catalog), d]")
        return cls.fit(catalog.item_ids, embeddings, **options)

    @classmethod
    def fit(
        cls,
        item_ids: Sequence[str],
        embeddings: np.ndarray,
        n_levels: int | None = None,
        n_codes: int | Sequence[int] | None = None,
        seed: int = 0,
        balanced: bool = False,
        n_iter: int = 25,
    ) -> SemanticIdScheme:
        """embeddings: [n, d] aligned with item_ids. Unset sizes come from `default_codebook(n)`."""
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or len(emb) != len(item_ids):
            raise ValueError(f"embeddings {emb.shape} do not match {len(item_ids)} items")
        auto_levels, auto_codes = default_codebook(len(item_ids))
        n_levels = n_levels or auto_levels
        codes, centroids = fit_residual_kmeans(emb, n_levels, n_codes or auto_codes, seed, balanced, n_iter)
        full = disambiguate(codes)
        info = {
            "seed": seed,
            "balanced": balanced,
            "n_iter": n_iter,
            "residual_norms": residual_norms(emb, codes, centroids),
            "collision_rate_at_fit": collision_rate(codes),
        }
        sizes = [len(c) for c in centroids] + [int(full[:, -1].max()) + 1]
        return cls(list(item_ids), full, centroids, sizes, info)

    def _put(self, item_id: str, codes: tuple[int, ...]) -> None:
        if len(codes) != len(self.codebook_sizes):
            raise ValueError(f"item {item_id!r}: {len(codes)} codes, expected {len(self.codebook_sizes)}")
        self._assign(item_id, codes_to_tokens(codes))

    @property
    def n_levels(self) -> int:
        """Number of RQ-KMeans levels L (without the disambiguation level)."""
        return len(self.centroids)

    @property
    def depth(self) -> int:
        return self.n_levels + 1

    def codes_of(self, item_id: str) -> tuple[int, ...]:
        """The L+1 codes of an item (KeyError naming it if unknown)."""
        return tuple(sid_code(token) for token in self.item_tokens(item_id))

    def new_tokens(self) -> list[str]:
        """Every (level, code) token, level by level, codes ascending."""
        return [sid_token(level, c) for level, k in enumerate(self.codebook_sizes) for c in range(k)]

    def code_matrix(self) -> np.ndarray:
        """[n, L+1] codes in `item_ids` order."""
        rows = [self.codes_of(item_id) for item_id in self.item_ids]
        return np.array(rows, dtype=np.int64).reshape(len(self), self.depth)

    def stats(self) -> dict[str, Any]:
        codes = self.code_matrix()
        groups = Counter(map(tuple, codes[:, :-1].tolist()))
        return {
            "scheme": self.name,
            "n_items": len(self),
            "n_levels": self.n_levels,
            "depth": self.depth,
            "codebook_sizes": list(self.codebook_sizes),
            "n_new_tokens": sum(self.codebook_sizes),
            "collision_rate_before_disambiguation": collision_rate(codes[:, :-1]),
            "max_cluster_size": max(groups.values(), default=0),
            "n_distinct_prefixes": len(groups),
            "cluster_sizes": level_cluster_sizes(codes[:, :-1]) if len(codes) else [],
            **self.fit_info,
        }

    def add_item(self, item_id: str, embedding: np.ndarray | None = None, text: str | None = None) -> None:
        """Nearest code per level, then the smallest free disambiguation code under that prefix.

        embedding: [d]. If that code exceeds the disambiguation codebook, the codebook grows
        and `new_tokens()` gains a token (callers must then extend their vocabulary).
        """
        if embedding is None:
            raise ValueError(f"item {item_id!r}: semantic ids need an embedding")
        prefix = tuple(int(c) for c in encode_residual(np.asarray(embedding)[None, :], self.centroids)[0])
        free = next(c for c in itertools.count() if self.item_for_tokens(codes_to_tokens((*prefix, c))) is None)
        self._put(item_id, (*prefix, free))
        self.codebook_sizes[-1] = max(self.codebook_sizes[-1], free + 1)

    def _state(self) -> dict[str, Any]:
        return {
            "item_ids": self.item_ids,
            "codes": self.code_matrix().tolist(),
            "codebook_sizes": self.codebook_sizes,
            "fit_info": self.fit_info,
            "centroids_file": CENTROIDS_FILE,
        }

    def save(self, directory: Path) -> None:
        super().save(directory)
        arrays = {f"level_{i}": c for i, c in enumerate(self.centroids)}
        np.savez(Path(directory) / CENTROIDS_FILE, **arrays)

    @classmethod
    def _from_state(cls, state: dict[str, Any], directory: Path) -> SemanticIdScheme:
        with np.load(directory / state["centroids_file"]) as npz:
            centroids = [npz[f"level_{i}"] for i in range(len(npz.files))]
        codes = np.asarray(state["codes"], dtype=np.int64).reshape(len(state["item_ids"]), -1)
        return cls(state["item_ids"], codes, centroids, state["codebook_sizes"], state["fit_info"])
