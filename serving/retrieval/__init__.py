"""FAISS retrieval for reasoning mode: user vector -> top-K items, raw ids at the boundary (DESIGN.md §1, §6)."""

from serving.retrieval.cold_start import (
    ColdStartError,
    add_cold_items,
    add_cold_sid_items,
    assign_cold_identifiers,
    remove_items_everywhere,
)
from serving.retrieval.index import ItemIndex
from serving.retrieval.settings import IndexSettings, auto_nlist

__all__ = [
    "ColdStartError",
    "IndexSettings",
    "ItemIndex",
    "add_cold_items",
    "add_cold_sid_items",
    "assign_cold_identifiers",
    "auto_nlist",
    "remove_items_everywhere",
]
