"""RISER's oversample-then-dedupe selection of rollouts (pure; the rollout itself lives in training/rollout/)."""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from typing import NamedTuple


class Deduped(NamedTuple):
    indices: list[int]  # kept positions in the drawn list, ascending
    duplicate_share: float  # (m - |unique|) / m: share of the m draws that repeat an earlier draw
    n_unique: int


def oversample_dedupe(items: Sequence[Hashable], n: int, rng: random.Random) -> Deduped:
    """Keep n of m oversampled rollouts, preferring distinct items (riser.txt §3.2.1, Eq. 4-5).

    items: the m drawn completions (item ids or token tuples), in draw order; n: target group size.
      O_Final = sample(O_Unique, n)                               if |O_Unique| >= n
                O_Unique ∪ sample(O_Dups, n - |O_Unique|)         otherwise
    O_Unique holds the first occurrence of each distinct item, O_Dups every later occurrence (a multiset,
    so an item drawn often is proportionally likely to fill a slot). `sample` is `rng.sample`: uniform,
    without replacement, as the paper defines it. When |O_Unique| >= n a *random* n are kept, not the
    first n in draw order: high-probability items tend to be drawn first, so "first n" would drop
    preferentially the rare items the step exists to explore. With m < n all m are kept ("up to n",
    App. C). Deterministic for a given seeded `rng`; returns sorted indices and the duplicate share.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    seen: set[Hashable] = set()
    unique: list[int] = []
    dups: list[int] = []
    for i, item in enumerate(items):
        if item in seen:
            dups.append(i)
        else:
            seen.add(item)
            unique.append(i)
    if len(unique) >= n:
        kept = rng.sample(unique, n)
    else:
        kept = unique + rng.sample(dups, min(n - len(unique), len(dups)))
    m = len(items)
    share = (m - len(unique)) / m if m else 0.0
    return Deduped(sorted(kept), share, len(unique))
