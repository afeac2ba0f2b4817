"""Item-id checks shared by both modes: a request's history must name catalog items; a stored one is filtered."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from serving.errors import RequestInvalid
from training.catalog import Catalog
from training.text import shorten

MAX_NAMED = 10


def unknown_items(catalog: Catalog, items: Iterable[str]) -> list[str]:
    """The ids of `items` the catalog lacks, each once, in request order."""
    return list(dict.fromkeys(i for i in items if i not in catalog))


def refuse_unknown_items(catalog: Catalog, items: Sequence[str]) -> None:
    """RequestInvalid (-> 422) naming up to 10 unknown ids when the history holds any."""
    unknown = unknown_items(catalog, items)
    if unknown:
        named = ", ".join(repr(shorten(i)) for i in unknown[:MAX_NAMED])
        more = f" and {len(unknown) - MAX_NAMED} more" if len(unknown) > MAX_NAMED else ""
        raise RequestInvalid(f"{len(unknown)} unknown item id(s) in the history: {named}{more}")


def known_items(catalog: Catalog, items: Iterable[str]) -> tuple[str, ...]:
    """`items` without the ids the catalog lacks (a stored history may name items newer than the bundle)."""
    return tuple(i for i in items if i in catalog)


def title_of(catalog: Catalog, item_id: str) -> str:
    """The catalog title, or the id itself for an item the catalog lacks (e.g. one added to the index later)."""
    return catalog.info(item_id).title if item_id in catalog else item_id
