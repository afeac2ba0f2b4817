"""Prefix trie over item token-id sequences, for constrained decoding (DESIGN.md §1, §4).

Each item is one token-id sequence; `allowed_next(prefix)` gives the token ids
that keep a partial generation on the path to some real item, in O(depth).
Sequences may have different lengths and one may be a prefix of another (a
terminal at an internal node): `is_complete` and `item_at` answer for the
exact sequence, `allowed_next` for its continuations. Callers that decode
variable-length identifiers (titles) append an end token so that "stop here"
is itself a choice.

Every node counts the items at or below it (`count_under`), so a set of
excluded items can be turned into the prefixes that lead only to excluded
items (`dead_prefixes`), which a beam search masks to skip seen items.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence


class DuplicateSequenceError(ValueError):
    """A token-id sequence that another item already owns."""


class _Node:
    __slots__ = ("children", "item", "count", "_sorted")

    def __init__(self) -> None:
        self.children: dict[int, _Node] = {}
        self.item: str | None = None
        self.count = 0  # items whose sequence ends at or below this node
        self._sorted: tuple[int, ...] | None = None

    def sorted_children(self) -> tuple[int, ...]:
        """Child token ids in ascending order, cached until the node changes."""
        if self._sorted is None:
            self._sorted = tuple(sorted(self.children))
        return self._sorted


class ItemTrie:
    """Token-id sequences -> raw item ids. Nodes are dicts keyed by token id."""

    def __init__(self) -> None:
        self._root = _Node()
        self._sequences: dict[str, tuple[int, ...]] = {}

    @classmethod
    def build(cls, mapping: Mapping[str, Sequence[int]]) -> ItemTrie:
        """mapping: raw item id -> its token ids (any length >= 1)."""
        trie = cls()
        for item_id, ids in mapping.items():
            trie.insert(item_id, ids)
        return trie

    def __len__(self) -> int:
        return len(self._sequences)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._sequences

    def __iter__(self) -> Iterator[str]:
        return iter(self._sequences)

    def sequence(self, item_id: str) -> tuple[int, ...]:
        """The token ids of `item_id` (KeyError if absent)."""
        return self._sequences[item_id]

    def insert(self, item_id: str, ids: Sequence[int]) -> None:
        """Add one item. Re-inserting the same (item, sequence) is a no-op.

        Raises DuplicateSequenceError if another item owns `ids`, ValueError if
        `item_id` is already present with another sequence or `ids` is empty.
        """
        seq = tuple(int(t) for t in ids)
        if not seq:
            raise ValueError(f"empty token sequence for item {item_id!r}")
        if item_id in self._sequences:
            if self._sequences[item_id] == seq:
                return
            raise ValueError(f"item {item_id!r} is already in the trie with {self._sequences[item_id]}")
        path = [self._root]
        for tok in seq:
            child = path[-1].children.get(tok)
            if child is None:
                child = path[-1].children[tok] = _Node()
                path[-1]._sorted = None
            path.append(child)
        if path[-1].item is not None:
            raise DuplicateSequenceError(
                f"sequence {list(seq)} of item {item_id!r} is already owned by item {path[-1].item!r}"
            )
        path[-1].item = item_id
        for node in path:
            node.count += 1
        self._sequences[item_id] = seq

    def delete(self, item_id: str) -> None:
        """Remove one item and prune branches that no longer lead to any item."""
        seq = self._sequences.pop(item_id)
        path = [self._root]
        for tok in seq:
            path.append(path[-1].children[tok])
        path[-1].item = None
        for node in path:
            node.count -= 1
        for depth in range(len(seq), 0, -1):
            node, parent = path[depth], path[depth - 1]
            if node.count:
                break
            del parent.children[seq[depth - 1]]
            parent._sorted = None

    def _find(self, prefix: Sequence[int]) -> _Node | None:
        node = self._root
        for tok in prefix:
            node = node.children.get(int(tok))
            if node is None:
                return None
        return node

    def allowed_next(self, prefix: Sequence[int]) -> list[int]:
        """Token ids that may follow `prefix`, ascending; [] if `prefix` leads nowhere."""
        node = self._find(prefix)
        return [] if node is None else list(node.sorted_children())

    def item_at(self, ids: Sequence[int]) -> str | None:
        """The item whose full sequence is exactly `ids`, else None."""
        node = self._find(ids)
        return None if node is None else node.item

    def is_complete(self, prefix: Sequence[int]) -> bool:
        """True when `prefix` is exactly some item's full sequence."""
        return self.item_at(prefix) is not None

    def is_valid_prefix(self, prefix: Sequence[int]) -> bool:
        """True when `prefix` (possibly empty) can still be extended or ends at an item."""
        return self._find(prefix) is not None

    def count_under(self, prefix: Sequence[int]) -> int:
        """Number of items whose sequence starts with `prefix` (the item at `prefix` itself included)."""
        node = self._find(prefix)
        return 0 if node is None else node.count

    def dead_prefixes(self, excluded: Iterable[str]) -> frozenset[tuple[int, ...]]:
        """Prefixes (non-empty, full sequences included) under which every item is in `excluded`.

        Cost O(|excluded| * depth). Ids that are not in the trie are ignored.
        """
        hits: dict[tuple[int, ...], int] = {}
        totals: dict[tuple[int, ...], int] = {}
        for item_id in set(excluded):
            seq = self._sequences.get(item_id)
            if seq is None:
                continue
            node = self._root
            for depth, tok in enumerate(seq, start=1):
                node = node.children[tok]
                prefix = seq[:depth]
                hits[prefix] = hits.get(prefix, 0) + 1
                totals[prefix] = node.count
        return frozenset(p for p, n in hits.items() if n == totals[p])
