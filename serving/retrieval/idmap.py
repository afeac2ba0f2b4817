"""Raw string item ids <-> the int64 ids FAISS stores (DESIGN.md §3: raw ids at every boundary).

New items get fresh ints from a counter that only grows, so an int that was
ever removed is never handed out again (a stale int from an old search can
never name a different item).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np


class IdMap:
    """Two-way map str <-> int64 with a monotone counter `next_id`."""

    def __init__(self) -> None:
        self._to_int: dict[str, int] = {}
        self._to_str: dict[int, str] = {}
        self.next_id = 0

    def __len__(self) -> int:
        return len(self._to_int)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._to_int

    def __iter__(self) -> Iterator[str]:
        return iter(self._to_int)

    def check_new(self, item_ids: Sequence[str]) -> None:
        """ValueError naming the first id that is already present or repeated in `item_ids`."""
        seen: set[str] = set()
        for item_id in item_ids:
            if not isinstance(item_id, str):
                raise TypeError(f"item ids are strings, got {item_id!r}")
            if item_id in self._to_int or item_id in seen:
                raise ValueError(f"item {item_id!r} is already in the index")
            seen.add(item_id)

    def assign(self, item_ids: Sequence[str]) -> np.ndarray:
        """Fresh ints for new ids (call `check_new` first): returns int64 [len(item_ids)]."""
        ints = np.arange(self.next_id, self.next_id + len(item_ids), dtype=np.int64)
        for item_id, i in zip(item_ids, ints.tolist(), strict=True):
            self._to_int[item_id] = i
            self._to_str[i] = item_id
        self.next_id += len(item_ids)
        return ints

    def ints_of(self, item_ids: Iterable[str]) -> np.ndarray:
        """int64 ids of known items; KeyError naming the first unknown one."""
        out = []
        for item_id in item_ids:
            try:
                out.append(self._to_int[item_id])
            except KeyError:
                raise KeyError(f"item {item_id!r} is not in the index") from None
        return np.asarray(out, dtype=np.int64)

    def known_ints(self, item_ids: Iterable[str]) -> list[int]:
        """int ids of those `item_ids` that are present (unknown ones are ignored)."""
        return [self._to_int[i] for i in item_ids if i in self._to_int]

    def str_of(self, i: int) -> str | None:
        """The raw id stored under int `i`, None if it is not (or no longer) mapped."""
        return self._to_str.get(int(i))

    def drop(self, item_ids: Iterable[str]) -> None:
        """Forget known ids (their ints are retired, never reused)."""
        for item_id in item_ids:
            del self._to_str[self._to_int.pop(item_id)]

    def to_json(self) -> dict[str, Any]:
        """{"ids": [...], "ints": [...], "next_id": n} in insertion order."""
        return {"ids": list(self._to_int), "ints": list(self._to_int.values()), "next_id": self.next_id}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> IdMap:
        """Inverse of `to_json`; refuses duplicate ids/ints or ints at or above next_id."""
        out = cls()
        ids, ints, out.next_id = doc["ids"], [int(i) for i in doc["ints"]], int(doc["next_id"])
        for item_id, i in zip(ids, ints, strict=True):
            if item_id in out._to_int or i in out._to_str or not 0 <= i < out.next_id:
                raise ValueError(f"corrupt id map at item {item_id!r} -> {i}")
            out._to_int[item_id], out._to_str[i] = i, item_id
        return out
