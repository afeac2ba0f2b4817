"""Cold start: the most popular items, for a user with no history anywhere (DESIGN.md §6, `cold_start`).

Counts come, like the Pop baseline's (training/baselines/pop.py), from the training split's item occurrences:
a Pop baseline bundle stores them as `model/counts.json` ({raw id: count}). Bundles of other kinds carry no
counts, so `Popularity.from_bundles` takes the counts of the first given bundle that has them and otherwise
falls back to catalog order. Score (higher is better), as Pop scores:

    score_j = count_j + 0.5 * (n - j) / (n + 1)     j = catalog index; ties go to the lower index
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from serving.engine import ScoredItem
from training.catalog import Catalog

COUNTS_FILE = Path("model") / "counts.json"
log = logging.getLogger(__name__)


class Popularity:
    """Items of `catalog` ranked by training counts (missing counts are 0); `source` says where counts came from."""

    def __init__(self, catalog: Catalog, counts: Mapping[str, int] | None = None, source: str = "catalog_order"):
        self.catalog, self.source = catalog, source if counts else "catalog_order"
        counts = counts or {}
        n = len(catalog)
        scores = {item: int(counts.get(item, 0)) + 0.5 * (n - j) / (n + 1) for j, item in enumerate(catalog.item_ids)}
        self.ranking: list[tuple[str, float]] = sorted(scores.items(), key=lambda pair: -pair[1])

    @classmethod
    def from_bundles(cls, catalog: Catalog, bundle_dirs: Iterable[str | Path]) -> Popularity:
        """Counts of the first bundle holding `model/counts.json` (a Pop baseline bundle), else catalog order."""
        for root in bundle_dirs:
            path = Path(root) / COUNTS_FILE
            if path.is_file():
                try:
                    counts = json.loads(path.read_text())
                    return cls(catalog, {str(k): int(v) for k, v in counts.items()}, source=str(path))
                except (ValueError, AttributeError) as err:
                    log.warning("ignoring popularity counts %s: %s", path, err)
        return cls(catalog)

    def top(self, k: int, exclude: Collection[str] = ()) -> list[ScoredItem]:
        """The k most popular items not in `exclude`, best first, with catalog titles."""
        out: list[ScoredItem] = []
        for item, score in self.ranking:
            if item not in exclude:
                out.append(ScoredItem(item, self.catalog.info(item).title, float(score)))
                if len(out) == k:
                    break
        return out
