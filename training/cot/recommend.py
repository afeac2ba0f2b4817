"""The programmatic teacher's recommendation score (gream.txt §4.2, stage 4).

For a candidate item c with genres G(c) and release year y(c):

    score(c) = sum_{g in G(c)} w(g) + ERA_BONUS * 1[|y(c) - median year of the history| <= ERA_WINDOW]
    w(g)     = (share of history items carrying g + share of the last `recent` items carrying g) / 2

so the long-run taste (top genres) and the recent intent both count, and an
item of the history's era gets a fixed bonus. Candidates are catalog items not
in the history; ties go to the item that comes first in catalog order, so the
choice is deterministic. Scoring is one matrix-vector product over the catalog.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from training.catalog import Catalog
from training.cot.facts import HistoryFacts, parse_year

ERA_BONUS = 0.5
ERA_WINDOW = 5


def genre_weight(facts: HistoryFacts, genre: str) -> float:
    """w(g): mean of the long-run and the recent share of history items carrying `genre`."""
    return (facts.share(genre) + facts.recent_share(genre)) / 2


def era_match(facts: HistoryFacts, year: int | None) -> bool:
    """True when `year` lies within ERA_WINDOW years of the history's median year."""
    return year is not None and facts.year_median is not None and abs(year - facts.year_median) <= ERA_WINDOW


def score_item(facts: HistoryFacts, genres: Collection[str], year: int | None) -> float:
    """score(c) for one item (the reference the vectorised `GenreIndex.scores` must match)."""
    return sum(genre_weight(facts, g) for g in set(genres)) + (ERA_BONUS if era_match(facts, year) else 0.0)


@dataclass(frozen=True)
class GenreIndex:
    """The catalog as arrays: genres [n_items, n_genres] (0/1), years [n_items] (NaN where unknown);
    positions: raw id -> row."""

    item_ids: tuple[str, ...]
    genres: tuple[str, ...]
    genre_matrix: np.ndarray
    years: np.ndarray
    positions: dict[str, int]

    @classmethod
    def build(cls, catalog: Catalog) -> GenreIndex:
        genres = tuple(sorted({g for info in catalog.items for g in info.genres}))
        column = {g: j for j, g in enumerate(genres)}
        matrix = np.zeros((len(catalog), len(genres)), dtype=np.float64)
        years = np.full(len(catalog), np.nan)
        for i, info in enumerate(catalog.items):
            for g in info.genres:
                matrix[i, column[g]] = 1.0
            year = parse_year(info.year)
            if year is not None:
                years[i] = year
        ids = tuple(catalog.item_ids)
        return cls(ids, genres, matrix, years, {item: i for i, item in enumerate(ids)})

    def scores(self, facts: HistoryFacts) -> np.ndarray:
        """score(c) for every catalog item, [n_items], catalog order."""
        weights = np.array([genre_weight(facts, g) for g in self.genres], dtype=np.float64)
        scores = self.genre_matrix @ weights if len(self.genres) else np.zeros(len(self.item_ids))
        if facts.year_median is not None:
            with np.errstate(invalid="ignore"):
                near = np.abs(self.years - facts.year_median) <= ERA_WINDOW
            scores = scores + ERA_BONUS * near
        return scores

    def recommend(self, facts: HistoryFacts, exclude: Collection[str]) -> tuple[str, float] | None:
        """(best item not in `exclude`, its score); ties -> first in catalog order; None if all are excluded."""
        scores = self.scores(facts)
        scores[[self.positions[item] for item in set(exclude) if item in self.positions]] = -np.inf
        best = int(np.argmax(scores))
        if scores[best] == -np.inf:
            return None
        return self.item_ids[best], float(scores[best])
