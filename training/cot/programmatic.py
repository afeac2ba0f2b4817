"""The default teacher: a programmatic five-stage chain of thought (gream.txt §4.2).

Grounded in the catalog (title, year, genres) and the history only; no model.
Stage by stage (numbers from `training/cot/facts.py`):

1. behavioural evidence: genre counts over the history and over its last `recent` items, release-year
   range and (lower) median, the last `n_last` items;
2. latent preferences: the `top_k` genres with their shares, the era (decade of the median year);
3. intent: the most frequent recent genre, against the long-run favourite;
4. recommendation + justification: without a target, the unseen catalog item with the best
   `training/cot/recommend.py` score; with a target (reverse reasoning), the target, justified by the
   genres it shares with the history and its distance to the median year;
5. denoised history: the history without items that share no genre with the top genres, order kept.

Deterministic: the phrasing variant of each stage is drawn from `random.Random(f"{seed}:{sample_id}")`;
the facts never depend on the seed. With `target=None`, `sample.target` is never read.
"""

from __future__ import annotations

import random
from dataclasses import asdict

from training.catalog import Catalog
from training.cot.facts import HistoryFacts, compute_history_facts, denoise_history, parse_year
from training.cot.recommend import GenreIndex
from training.cot.teacher import CoT
from training.data.types import Sample


def percent(part: int, whole: int) -> int:
    """Rounded percentage, 0 for an empty whole."""
    return round(100 * part / whole) if whole else 0


def format_counts(counts: dict[str, int], whole: int, limit: int) -> str:
    """"Drama 4 of 6, Comedy 2 of 6" for the first `limit` genres."""
    return ", ".join(f"{genre} {count} of {whole}" for genre, count in list(counts.items())[:limit])


class ProgrammaticTeacher:
    """catalog: item text source and candidate set; seed: phrasing variants only.

    recent: size of the recent window; top_k: genres kept as the long-run taste; n_last: items
    described as "most recent"; max_listed: genres listed per count in the evidence stage.
    """

    def __init__(self, catalog: Catalog, seed: int = 0, recent: int = 5, top_k: int = 3, n_last: int = 3,
                 max_listed: int = 5):
        self.catalog, self.seed = catalog, seed
        self.recent, self.top_k, self.n_last, self.max_listed = recent, top_k, n_last, max_listed
        self.index = GenreIndex.build(catalog)

    def write(self, sample: Sample, target: str | None = None) -> CoT:
        """Five-stage CoT for `sample`; `target` given -> the CoT recommends and justifies it."""
        facts = compute_history_facts(sample.history, self.catalog, self.recent, self.top_k)
        rng = random.Random(f"{self.seed}:{sample.sample_id}")
        if target is not None:
            if target not in self.catalog:
                raise ValueError(f"target {target!r} is not in the catalog")
            recommended, score = target, None
        else:
            picked = self.index.recommend(facts, exclude=set(sample.history))
            recommended, score = picked if picked is not None else (None, None)
        denoised = denoise_history(facts.items, self.catalog, facts.top_genres)
        shared = self._shared_genres(facts, recommended)
        record = {**asdict(facts), "recommended": recommended, "score": score, "shared_genres": shared,
                  "denoised": denoised, "dropped": tuple(i for i in facts.items if i not in set(denoised))}
        return CoT(
            evidence=self._evidence(facts, rng),
            preferences=self._preferences(facts, rng),
            intent=self._intent(facts, rng),
            recommendation=self._recommendation(recommended),
            justification=self._justification(facts, recommended, shared, score),
            denoised_history=denoised,
            denoised_names=tuple(self.catalog.display_name(i) for i in denoised),
            recommended_item=recommended,
            facts=record,
        )

    def describe(self, item: str) -> str:
        """"Title (1995; Drama, Comedy)", leaving out what the catalog lacks and a year the title already shows."""
        info, name = self.catalog.info(item), self.catalog.display_name(item)
        year = info.year if info.year not in name else ""
        details = "; ".join(part for part in (year, ", ".join(info.genres)) if part)
        return f"{name} ({details})" if details else name

    def _shared_genres(self, facts: HistoryFacts, item: str | None) -> tuple[str, ...]:
        """The item's genres that occur in the history, most frequent first."""
        if item is None:
            return ()
        genres = set(self.catalog.info(item).genres)
        return tuple(g for g in facts.genre_counts if g in genres)

    def _evidence(self, facts: HistoryFacts, rng: random.Random) -> str:
        n, n_recent = facts.n_items, len(facts.recent_items)
        if n == 0:
            return "The history holds no known item."
        parts = [rng.choice((f"The history holds {n} item{'s' if n != 1 else ''}.",
                             f"{n} item{'s were' if n != 1 else ' was'} consumed, oldest first."))]
        if facts.unknown_items:
            parts.append(f"{len(facts.unknown_items)} unknown item(s) are ignored.")
        if facts.genre_counts:
            parts.append(f"Genres: {format_counts(facts.genre_counts, n, self.max_listed)}.")
            parts.append(f"Last {n_recent}: {format_counts(facts.recent_genre_counts, n_recent, self.max_listed)}.")
        if facts.year_median is not None:
            parts.append(f"Release years {facts.year_min}-{facts.year_max}, median {facts.year_median}.")
        last = [self.describe(item) for item in reversed(facts.items[-self.n_last:])]
        parts.append(f"Most recent first: {'; '.join(last)}.")
        return " ".join(parts)

    def _preferences(self, facts: HistoryFacts, rng: random.Random) -> str:
        if not facts.top_genres:
            return "No genre preference can be read from the history."
        top = ", ".join(f"{g} ({percent(facts.genre_counts[g], facts.n_items)}%)" for g in facts.top_genres)
        era = f"; mostly {facts.era} releases" if facts.era else ""
        return rng.choice((f"Long-run taste: {top}{era}.", f"The user keeps returning to {top}{era}."))

    def _intent(self, facts: HistoryFacts, rng: random.Random) -> str:
        genre = facts.intent_genre
        if genre is None:
            return "Nothing recent points to a genre; the next item follows the overall history."
        n_recent, count = len(facts.recent_items), facts.recent_genre_counts[genre]
        if genre == facts.top_genres[0]:
            return rng.choice((
                f"The last {n_recent} items stay with {genre} ({count} of {n_recent}), the long-run favourite: "
                f"the next item is likely another {genre} item.",
                f"Recent choices confirm {genre} ({count} of the last {n_recent}); the goal is more of it.",
            ))
        overall = percent(facts.genre_counts[genre], facts.n_items)
        return (f"The last {n_recent} items lean towards {genre} ({count} of {n_recent}, against {overall}% over "
                f"the whole history): the next item is likely {genre}.")

    def _recommendation(self, item: str | None) -> str:
        return "No unseen item is left to recommend." if item is None else f"Recommend {self.describe(item)}."

    def _justification(self, facts: HistoryFacts, item: str | None, shared: tuple[str, ...],
                       score: float | None) -> str:
        if item is None:
            return ""
        if shared:
            genres = ", ".join(f"{g} ({percent(facts.genre_counts[g], facts.n_items)}% of the history)"
                               for g in shared)
            parts = [f"It carries {genres}"]
        else:
            parts = ["It shares no genre with the history"]
        year = parse_year(self.catalog.info(item).year)
        if year is not None and facts.year_median is not None:
            gap = abs(year - facts.year_median)
            parts.append(f"it was released in {year}, {gap} year{'s' if gap != 1 else ''} from the median "
                         f"{facts.year_median}")
        if score is not None:
            parts.append(f"its score {score:.2f} is the best among unseen items")
        return "; ".join(parts) + "."
