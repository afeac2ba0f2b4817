"""Title identifiers: an item is written as its catalog display name, plain text (DESIGN.md §4).

For pretrained LMs that already know titles. Adds no tokens; depth is
variable (the tokenizer decides). Display names are unique: titles shared by
two items carry the raw id ("Title [id]", `Catalog.display_name`), so
identical text never names two items. One title may still be a prefix of
another; decoders append an end token before building the trie.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from training.identifiers.base import IdentifierScheme, register_scheme

if TYPE_CHECKING:
    from training.catalog import Catalog


@register_scheme("titles")
class TitleScheme(IdentifierScheme):
    """names: raw item id -> display name (unique, non-empty)."""

    def __init__(self, names: dict[str, str]):
        super().__init__()
        for item_id, name in names.items():
            self.add_item(item_id, text=name)

    @classmethod
    def build(cls, catalog: Catalog, embeddings: np.ndarray | None = None, **options: Any) -> TitleScheme:
        if options:
            raise TypeError(f"titles scheme takes no options, got {sorted(options)}")
        return cls({item_id: catalog.display_name(item_id) for item_id in catalog.item_ids})

    @property
    def depth(self) -> None:
        return None

    def item_for_text(self, text: str) -> str | None:
        """The raw id whose display name is exactly `text` (after stripping), else None."""
        return self.item_for_tokens((text.strip(),))

    def new_tokens(self) -> list[str]:
        return []

    def stats(self) -> dict[str, Any]:
        lengths = [len(tokens[0]) for tokens in self._item_tokens.values()] or [0]
        return {
            "scheme": self.name,
            "n_items": len(self),
            "n_new_tokens": 0,
            "depth": None,
            "collision_rate_before_disambiguation": 0.0,
            "mean_chars": float(np.mean(lengths)),
            "max_chars": int(max(lengths)),
        }

    def add_item(self, item_id: str, embedding: np.ndarray | None = None, text: str | None = None) -> None:
        """text: the display name (one token); if another item already uses it, " [item_id]" is appended."""
        name = (text or "").strip()
        if not name:
            raise ValueError(f"item {item_id!r} needs a non-empty title")
        if self.item_for_text(name) is not None:
            name = f"{name} [{item_id}]"
        self._assign(item_id, (name,))

    def _state(self) -> dict[str, Any]:
        return {"names": {item_id: tokens[0] for item_id, tokens in self._item_tokens.items()}}

    @classmethod
    def _from_state(cls, state: dict[str, Any], directory: Path) -> TitleScheme:
        return cls(state["names"])
