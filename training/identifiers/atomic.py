"""Atomic identifiers: one new vocabulary token `<i_{item_id}>` per item, depth 1 (DESIGN.md §4).

Strong on small catalogs and the control row `sft_atomic` (DESIGN.md §8).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from training.identifiers.base import IdentifierScheme, register_scheme

if TYPE_CHECKING:
    from training.catalog import Catalog

_SAFE_ID = re.compile(r"^[^\s<>]+$")


def atomic_token(item_id: str) -> str:
    """`<i_{item_id}>`; ids with whitespace or angle brackets are refused."""
    if not _SAFE_ID.match(item_id):
        raise ValueError(f"item id {item_id!r} cannot be written as an atomic token")
    return f"<i_{item_id}>"


@register_scheme("atomic")
class AtomicScheme(IdentifierScheme):
    """item_ids: raw ids in a stable order (catalog order); new_tokens() follows it."""

    def __init__(self, item_ids: list[str]):
        super().__init__()
        for item_id in item_ids:
            self.add_item(item_id)

    @classmethod
    def build(cls, catalog: Catalog, embeddings: np.ndarray | None = None, **options: Any) -> AtomicScheme:
        if options:
            raise TypeError(f"atomic scheme takes no options, got {sorted(options)}")
        return cls(catalog.item_ids)

    @property
    def depth(self) -> int:
        return 1

    def new_tokens(self) -> list[str]:
        return [tokens[0] for tokens in self._item_tokens.values()]

    def stats(self) -> dict[str, Any]:
        return {
            "scheme": self.name,
            "n_items": len(self),
            "n_new_tokens": len(self),
            "depth": 1,
            "collision_rate_before_disambiguation": 0.0,
        }

    def add_item(self, item_id: str, embedding: np.ndarray | None = None, text: str | None = None) -> None:
        self._assign(item_id, (atomic_token(item_id),))

    def _state(self) -> dict[str, Any]:
        return {"item_ids": self.item_ids}

    @classmethod
    def _from_state(cls, state: dict[str, Any], directory: Path) -> AtomicScheme:
        return cls(state["item_ids"])
