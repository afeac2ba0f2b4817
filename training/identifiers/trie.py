"""Prefix trie over item token-id sequences, for constrained decoding (DESIGN.md §1, §4).

Each item is one token-id sequence; `allowed_next(prefix)` gives the token ids
that keep a partial generation on the path to some real item, in O(depth).
Sequences may have different lengths and one may be a prefix of another (a
terminal at an internal node): `is_complete` and `item_at` answer for the
exact sequence, `allowed_next` for its continuations. Callers that decode
variable-length identifiers (titles) append an end token so that "stop here"
is itself a choice.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence


class DuplicateSequenceError(ValueError):
    """A token-id sequence that another item already owns."""


class _Node:
    __slots__ = ("children", "item", "_sorted")

    def __init__(self) -> None:
        self.children: dict[int, _Node] = {}
        self.item: str | None = None
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
        node = self._root
        for tok in seq:
            child = node.children.get(tok)
            if child is None:
                child = node.children[tok] = _Node()
                node._sorted = None
            node = child
        if node.item is not None:
            raise DuplicateSequenceError(
                f"sequence {list(seq)} of item {item_id!r} is already owned by item {node.item!r}"
            )
        node.item = item_id
        self._sequences[item_id] = seq

    def delete(self, item_id: str) -> None:
        """Remove one item and prune branches that no longer lead to any item."""
        seq = self._sequences.pop(item_id)
        path = [self._root]
        for tok in seq:
            path.append(path[-1].children[tok])
        path[-1].item = None
        for depth in range(len(seq), 0, -1):
            node, parent = path[depth], path[depth - 1]
            if node.children or node.item is not None:
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
