"""The in-process direct-mode engine: a policy bundle's trie-constrained beam search, with exact scores.

`PolicyRecommender.rank` returns ids only; this engine calls the same search one level lower
(`recommender.generator.top_items(prompt_ids, k, exclude)`, training/rollout/beam.py), which returns
(item, exact log P(item | prompt)) pairs. Every item is a complete trie path, hence a catalog item, items
are distinct, and seen items are masked inside the search, so k come back whenever the catalog holds k
unseen items. A batch is one search per beam width (width = max(k, the bundle's beam width)), so a query's
answer does not depend on the k of the other queries batched with it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from serving.engine import DirectQuery, ScoredItem
from serving.engine.requests import Prepared, check_direct_bundle, prepare_query, scored_item, warmup_query
from serving.errors import RequestInvalid
from training.data.types import Sample
from training.inference import load_recommender, max_history


class NativeDirectEngine:
    """Direct mode on a loaded `PolicyRecommender` (batched KV-cache beam search); see `from_bundle`.

    drop_unknown: drop history items the bundle's catalog lacks (e.g. items newer than the bundle)
    instead of refusing the query; a history left empty is refused either way.
    """

    def __init__(self, recommender, drop_unknown: bool = False):
        for attr in ("generator", "prompt_ids", "catalog"):
            if not hasattr(recommender, attr):
                raise TypeError(f"NativeDirectEngine needs a policy recommender (trie beam search); "
                                f"{type(recommender).__name__} has no {attr!r}")
        self.recommender = recommender
        self.catalog = recommender.catalog
        self.drop_unknown = drop_unknown
        self.keep = max_history(recommender)
        self.manifest: dict = getattr(recommender, "manifest", None) or {}

    @classmethod
    def from_bundle(cls, bundle_dir: str | Path, device: str = "cpu", beam_width: int | None = None,
                    expected_version: str | None = None, drop_unknown: bool = False) -> NativeDirectEngine:
        """Load and validate a policy bundle; BundleError for another kind or a version other than expected."""
        recommender = load_recommender(bundle_dir, device=device, beam_width=beam_width, mode="direct")
        check_direct_bundle(bundle_dir, recommender.manifest, expected_version)
        return cls(recommender, drop_unknown=drop_unknown)

    @property
    def bundle_version(self) -> str:
        return str(self.manifest.get("bundle_version", "unknown"))

    def recommend_batch(self, queries: Sequence[DirectQuery]) -> list[list[ScoredItem] | RequestInvalid]:
        """Per query: up to k (item, title, log P) best first, or RequestInvalid (see DirectEngine)."""
        prepared = [self._prepare(q) for q in queries]
        results: list[list[ScoredItem] | RequestInvalid] = [p if isinstance(p, RequestInvalid) else []
                                                            for p in prepared]
        by_width: dict[int, list[int]] = defaultdict(list)
        for row, (query, prep) in enumerate(zip(queries, prepared, strict=True)):
            if not isinstance(prep, RequestInvalid):
                by_width[self.recommender.generator.width_for(query.k)].append(row)
        for rows in by_width.values():
            answers = self._search([prepared[r] for r in rows], max(queries[r].k for r in rows))
            for row, pairs in zip(rows, answers, strict=True):
                results[row] = [self._scored(item, score) for item, score in pairs[: queries[row].k]]
        return results

    def describe(self) -> dict:
        model = self.recommender.model
        return {"engine": "native", "bundle": self.manifest.get("name", self.recommender.name),
                "kind": self.manifest.get("kind", "policy"), "bundle_version": self.bundle_version,
                "beam_width": self.recommender.generator.beam_width, "n_items": len(self.catalog),
                "max_history": self.keep, "device": str(next(model.parameters()).device)}

    def warm(self) -> None:
        self.recommend_batch([warmup_query(self.catalog)])

    def _prepare(self, query: DirectQuery) -> Prepared:
        """(Sample of the last `keep` items, the seen set to exclude) or the reason the query is refused."""
        return prepare_query(query, self.catalog, self.keep, self.drop_unknown)

    def _search(self, prepared: list[tuple[Sample, frozenset[str]]], k: int) -> list[list[tuple[str, float]]]:
        prompts = [self.recommender.prompt_ids(sample) for sample, _ in prepared]
        exclude = [seen for _, seen in prepared]
        return self.recommender.generator.top_items(prompts, k, exclude if any(exclude) else None)

    def _scored(self, item_id: str, score: float) -> ScoredItem:
        return scored_item(self.catalog, item_id, score)
