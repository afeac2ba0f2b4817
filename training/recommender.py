"""The one model contract every recommender implements (DESIGN.md §4).

Baselines, the policy, the Rechead and R2ec all answer
`rank(samples, k) -> raw item ids`; the evaluator scores them alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from training.data.types import Sample


@runtime_checkable
class Recommender(Protocol):
    name: str

    def rank(
        self, samples: Sequence[Sample], k: int, exclude: Sequence[set[str]] | None = None
    ) -> list[list[str]]:
        """Top-k distinct raw item ids per sample, best first.

        exclude: per sample, raw ids that must not appear (seen-item filter).
        """
        ...


class ScoringRecommender:
    """Base for recommenders that can score the whole catalog at once.

    Subclasses implement `score_all(samples) -> np.ndarray[n_samples, n_items]`
    (higher is better, columns in catalog index order) and set `self.catalog`.
    """

    name = "scoring"
    catalog = None

    def score_all(self, samples: Sequence[Sample]) -> np.ndarray:
        raise NotImplementedError

    def rank(
        self, samples: Sequence[Sample], k: int, exclude: Sequence[set[str]] | None = None
    ) -> list[list[str]]:
        scores = np.asarray(self.score_all(samples), dtype=np.float64).copy()
        if exclude is not None:
            for row, items in enumerate(exclude):
                cols = [self.catalog.index_of(i) for i in items if i in self.catalog]
                scores[row, cols] = -np.inf
        k = min(k, scores.shape[1])
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(-scores, top, axis=1).argsort(axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        return [[self.catalog.id_at(int(j)) for j in row] for row in top]
