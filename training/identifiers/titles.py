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
        self._names: dict[str, str] = {}
        self._owner: dict[str, str] = {}
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

    @property
    def item_ids(self) -> list[str]:
        return list(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._names

    def item_tokens(self, item_id: str) -> tuple[str, ...]:
        """One string: the display name (the tokenizer splits it)."""
        try:
            return (self._names[item_id],)
        except KeyError:
            raise KeyError(f"item {item_id!r} has no title identifier") from None

    def item_for_text(self, text: str) -> str | None:
        """The raw id whose display name is exactly `text` (after stripping), else None."""
        return self._owner.get(text.strip())

    def new_tokens(self) -> list[str]:
        return []

    def stats(self) -> dict[str, Any]:
        lengths = [len(n) for n in self._names.values()] or [0]
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
        """text: the display name; if another item already uses it, " [item_id]" is appended."""
        if item_id in self._names:
            raise ValueError(f"item {item_id!r} already has a title identifier")
        name = (text or "").strip()
        if not name:
            raise ValueError(f"item {item_id!r} needs a non-empty title")
        if name in self._owner:
            name = f"{name} [{item_id}]"
            if name in self._owner:
                raise ValueError(f"title {name!r} of item {item_id!r} is already taken")
        self._names[item_id] = name
        self._owner[name] = item_id

    def remove_item(self, item_id: str) -> None:
        del self._owner[self._names.pop(item_id)]

    def _state(self) -> dict[str, Any]:
        return {"names": self._names}

    @classmethod
    def _from_state(cls, state: dict[str, Any], directory: Path) -> TitleScheme:
        return cls(state["names"])
