"""What every direct engine does around its search, so all of them answer alike (engine/native.py,
engine/vllm_engine.py): refuse a bundle that is not the pinned policy bundle, turn a `DirectQuery` into a
prompt sample and a seen set (or a `RequestInvalid`), and dress (item, log P) as a `ScoredItem`."""

from __future__ import annotations

from pathlib import Path

from serving.engine import DirectQuery, ScoredItem
from serving.errors import RequestInvalid
from training.bundle import BundleError
from training.catalog import Catalog
from training.data.types import Sample
from training.inference import RequestError, build_request

Prepared = tuple[Sample, frozenset[str]] | RequestInvalid


def check_direct_bundle(bundle_dir: str | Path, manifest: dict, expected_version: str | None) -> None:
    """BundleError unless the manifest is a policy bundle's, of `expected_version` when one is pinned."""
    if manifest.get("kind") != "policy":
        raise BundleError(f"{bundle_dir}: direct mode serves policy bundles, not {manifest.get('kind')!r}")
    if expected_version and manifest.get("bundle_version") != expected_version:
        raise BundleError(f"{bundle_dir}: bundle_version {manifest.get('bundle_version')!r}, the serve config "
                          f"pins {expected_version!r}")


def prepare_query(query: DirectQuery, catalog: Catalog, keep: int, drop_unknown: bool = False) -> Prepared:
    """(Sample of the last `keep` items, the seen set to exclude) or the reason the query is refused.

    drop_unknown: drop history items the catalog lacks instead of refusing; a history left empty is refused.
    """
    if query.k < 1:
        return RequestInvalid(f"k must be >= 1, got {query.k}")
    history = query.history
    if drop_unknown:
        history = tuple(i for i in history if i in catalog)
    try:
        sample = build_request(catalog, history, user_id=query.user_id, keep=keep)
    except RequestError as err:
        return RequestInvalid(str(err))
    return sample, frozenset(history) if query.exclude_seen else frozenset()


def scored_item(catalog: Catalog, item_id: str, score: float) -> ScoredItem:
    """A catalog item with its title and score (log P(item | prompt))."""
    return ScoredItem(item_id, catalog.info(item_id).title, float(score))


def warmup_query(catalog: Catalog) -> DirectQuery:
    """The tiny query `warm()` runs: the first catalog item as history, k = 1."""
    return DirectQuery((catalog.id_at(0),), 1, True, "warmup")
