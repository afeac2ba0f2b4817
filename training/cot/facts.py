"""Facts about a history that the programmatic teacher states (gream.txt §4.2, stages 1-3 and 5).

Every number here is computed from the catalog (genres, year) and the history
only, so each claim of the rendered chain of thought can be checked against
the data. The recommendation score lives in `training/cot/recommend.py`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from training.catalog import Catalog
from training.data.types import ItemInfo

_YEAR = re.compile(r"\d{4}")


def parse_year(year: str) -> int | None:
    """The first four-digit run of a year field ("1995", "2019-05-01" -> 2019); None if there is none."""
    match = _YEAR.search(year or "")
    return int(match.group()) if match else None


def era_of(year: int | None) -> str | None:
    """Decade label of a year: 1995 -> "1990s"; None -> None."""
    return None if year is None else f"{year // 10 * 10}s"


def count_genres(infos: Iterable[ItemInfo]) -> dict[str, int]:
    """genre -> number of items carrying it, ordered by count (descending), then name."""
    counts = Counter(genre for info in infos for genre in dict.fromkeys(info.genres))
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def median_low(values: Sequence[int]) -> int | None:
    """The lower median (an actual element, so a claimed median year is a real release year); None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


@dataclass(frozen=True)
class HistoryFacts:
    """What the evidence, preference and intent stages say.

    items: history ids found in the catalog, oldest first; unknown_items: ids the catalog lacks (ignored).
    genre_counts / recent_genre_counts: genre -> items carrying it, over `items` / over `recent_items`
        (the last `recent` items), ordered by count then name.
    year_min, year_max, year_median: over items with a year (lower median); None when no item has one.
    top_genres: the `top_k` first genres of genre_counts (the long-run taste); era: decade of year_median.
    intent_genre: the most frequent recent genre (ties: long-run count, then name); None without genres.
    """

    items: tuple[str, ...]
    unknown_items: tuple[str, ...]
    recent_items: tuple[str, ...]
    genre_counts: dict[str, int]
    recent_genre_counts: dict[str, int]
    year_min: int | None
    year_max: int | None
    year_median: int | None
    top_genres: tuple[str, ...]
    era: str | None
    intent_genre: str | None

    @property
    def n_items(self) -> int:
        return len(self.items)

    def share(self, genre: str) -> float:
        """Fraction of history items carrying `genre` (0.0 for an empty history)."""
        return self.genre_counts.get(genre, 0) / self.n_items if self.items else 0.0

    def recent_share(self, genre: str) -> float:
        """Fraction of the recent items carrying `genre`."""
        n = len(self.recent_items)
        return self.recent_genre_counts.get(genre, 0) / n if n else 0.0


def compute_history_facts(history: Sequence[str], catalog: Catalog, recent: int = 5, top_k: int = 3) -> HistoryFacts:
    """Genre counts and shares, release-year range and median, recent window, top genres, intent genre."""
    if recent < 1 or top_k < 1:
        raise ValueError(f"need recent >= 1 and top_k >= 1, got recent={recent}, top_k={top_k}")
    items = tuple(item for item in history if item in catalog)
    unknown = tuple(item for item in history if item not in catalog)
    infos = [catalog.info(item) for item in items]
    recent_items = items[-recent:]
    genre_counts = count_genres(infos)
    recent_counts = count_genres(infos[-recent:])
    years = [y for y in (parse_year(info.year) for info in infos) if y is not None]
    median = median_low(years)
    intent = min(recent_counts, key=lambda g: (-recent_counts[g], -genre_counts[g], g), default=None)
    return HistoryFacts(
        items=items,
        unknown_items=unknown,
        recent_items=recent_items,
        genre_counts=genre_counts,
        recent_genre_counts=recent_counts,
        year_min=min(years, default=None),
        year_max=max(years, default=None),
        year_median=median,
        top_genres=tuple(genre_counts)[:top_k],
        era=era_of(median),
        intent_genre=intent,
    )


def denoise_history(items: Sequence[str], catalog: Catalog, top_genres: Sequence[str]) -> tuple[str, ...]:
    """Stage 5 (gream.txt §4.2, denoised sequence rewriting): keep, in order, the items that share at least
    one genre with `top_genres`. With no top genres (no genre data) nothing is judged noise: all are kept."""
    if not top_genres:
        return tuple(items)
    top = set(top_genres)
    return tuple(item for item in items if top.intersection(catalog.info(item).genres))
