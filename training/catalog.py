"""Item catalog: raw item id <-> contiguous index <-> text (DESIGN.md §3).

The catalog holds every item of the item file (not only items seen in
training) so cold targets can be ranked. Index order is the stable id order
(numeric ids sorted numerically), so the same item file always gives the same
indices.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from training.data.types import ItemInfo


def id_sort_key(raw_id: str) -> tuple[int, int | str]:
    """Numeric ids sort numerically and before non-numeric ones, which sort as text."""
    return (0, int(raw_id)) if raw_id.isascii() and raw_id.isdigit() else (1, raw_id)


class UnknownItemError(KeyError):
    """A raw item id that the catalog does not hold."""


class Catalog:
    """items: ItemInfo in any order; stored sorted by `id_sort_key`."""

    def __init__(self, items: Iterable[ItemInfo]):
        self.items: list[ItemInfo] = sorted(items, key=lambda it: id_sort_key(it.item_id))
        self._index = {it.item_id: i for i, it in enumerate(self.items)}
        if len(self._index) != len(self.items):
            raise ValueError("catalog has duplicate item ids")
        title_counts = Counter(it.title for it in self.items)
        self.duplicate_titles = sorted(t for t, c in title_counts.items() if c > 1)
        self._display = [
            f"{it.title} [{it.item_id}]" if title_counts[it.title] > 1 else it.title for it in self.items
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._index

    @property
    def item_ids(self) -> list[str]:
        return [it.item_id for it in self.items]

    def index_of(self, item_id: str) -> int:
        try:
            return self._index[item_id]
        except KeyError:
            raise UnknownItemError(f"unknown item id {item_id!r}") from None

    def id_at(self, index: int) -> str:
        return self.items[index].item_id

    def info(self, item_id: str) -> ItemInfo:
        return self.items[self.index_of(item_id)]

    def display_name(self, item_id: str) -> str:
        """Title, with the raw id appended where two items share a title."""
        return self._display[self.index_of(item_id)]

    def texts(self) -> list[str]:
        return [it.text for it in self.items]

    def save(self, path: Path) -> None:
        rows = [
            {"item_id": it.item_id, "title": it.title, "year": it.year, "genres": list(it.genres)}
            for it in self.items
        ]
        Path(path).write_text(json.dumps({"items": rows}, ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> Catalog:
        rows = json.loads(Path(path).read_text())["items"]
        return cls(
            ItemInfo(r["item_id"], r["title"], r.get("year", ""), tuple(r.get("genres", ()))) for r in rows
        )
