"""Popularity baseline: every sample gets the same ranking, by training-set count.

score_j = count_j + 0.5 * (n_items - j) / (n_items + 1): counts from split.train_sequences; the
fractional part (< 0.5, decreasing in catalog index j) breaks ties by catalog index, lower first.
Items never seen in training score below every seen item.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from training.catalog import Catalog
from training.data.types import Sample
from training.recommender import ScoringRecommender

if TYPE_CHECKING:
    from training.data.split import SplitData


class PopRecommender(ScoringRecommender):
    name = "pop"

    def __init__(self, catalog: Catalog, counts: dict[str, int]):
        self.catalog = catalog
        self.counts = {i: int(c) for i, c in counts.items() if i in catalog}
        n = len(catalog)
        raw = np.array([self.counts.get(i, 0) for i in catalog.item_ids], dtype=np.float64)
        self._scores = raw + 0.5 * (n - np.arange(n)) / (n + 1)  # [n_items]

    @classmethod
    def train(cls, split: SplitData, catalog: Catalog, config: object = None,
              progress: bool = True) -> PopRecommender:
        """Counts of every item occurrence in split.train_sequences (config and progress unused)."""
        counts = Counter(i for seq in split.train_sequences.values() for i in seq)
        return cls(catalog, dict(counts))

    def score_all(self, samples: Sequence[Sample]) -> np.ndarray:
        """float64 [n_samples, n_items]: the same popularity row for every sample."""
        return np.tile(self._scores, (len(samples), 1))

    def save(self, folder: Path) -> None:
        """Write config.json ({"name": "pop"}) and counts.json ({raw id: count})."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps({"name": self.name}))
        (folder / "counts.json").write_text(json.dumps(self.counts, sort_keys=True))

    @classmethod
    def load(cls, folder: Path, catalog: Catalog, device: str = "cpu") -> PopRecommender:
        """Counts from `save` output (device unused: numpy scores)."""
        return cls(catalog, json.loads((Path(folder) / "counts.json").read_text()))
