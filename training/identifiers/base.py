"""Item identifier schemes: one interface for SIDs, atomic tokens and titles (DESIGN.md §4).

A scheme writes each raw item id as a tuple of token strings (`item_tokens`).
Schemes that add special tokens to the vocabulary list them, in a stable
order, in `new_tokens()`; the tokenizer builder adds exactly those. Token ids,
and the prefix trie over them, belong to the tokenizer side
(`training/identifiers/trie.py`).

Saved form: a directory with `scheme.json` ({"scheme": name, "version": ..., ...})
plus scheme-specific files; `load_scheme(dir)` dispatches on the name.
"""

from __future__ import annotations

import importlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    from training.catalog import Catalog

SCHEME_FILE = "scheme.json"
FORMAT_VERSION = 1

SCHEMES: dict[str, type[IdentifierScheme]] = {}
_BUILTIN_MODULES = ("atomic", "rqkmeans", "titles")


def register_scheme(name: str) -> Callable[[type[IdentifierScheme]], type[IdentifierScheme]]:
    """Class decorator: make a scheme loadable by `name` (the value of `scheme.json`'s "scheme")."""

    def deco(cls: type[IdentifierScheme]) -> type[IdentifierScheme]:
        cls.name = name
        SCHEMES[name] = cls
        return cls

    return deco


class IdentifierScheme(ABC):
    """How raw item ids are written as tokens.

    name: "sid" | "atomic" | "titles".
    depth: number of tokens per item if fixed, None if variable (titles).

    The base class owns the two-way map raw item id <-> token tuple; subclasses
    compute the tokens and record them with `_assign` / `_release`, so no two
    items ever share an identifier.
    """

    name: ClassVar[str] = ""

    def __init__(self) -> None:
        self._item_tokens: dict[str, tuple[str, ...]] = {}
        self._token_owner: dict[tuple[str, ...], str] = {}

    @classmethod
    @abstractmethod
    def build(
        cls, catalog: Catalog, embeddings: np.ndarray | None = None, **options: Any
    ) -> IdentifierScheme:
        """Scheme over every catalog item; embeddings: [len(catalog), d] in catalog order (SIDs only)."""

    @property
    @abstractmethod
    def depth(self) -> int | None: ...

    @abstractmethod
    def new_tokens(self) -> list[str]:
        """Special tokens this scheme adds to a vocabulary, in a stable order."""

    @abstractmethod
    def stats(self) -> dict[str, Any]:
        """JSON-ready summary (sizes, collision rate, ...)."""

    @abstractmethod
    def add_item(self, item_id: str, embedding: np.ndarray | None = None, text: str | None = None) -> None:
        """Give a new item an identifier (cold start). embedding: [d] (SIDs); text: display name (titles)."""

    @abstractmethod
    def _state(self) -> dict[str, Any]:
        """JSON-ready state written into scheme.json."""

    @classmethod
    @abstractmethod
    def _from_state(cls, state: dict[str, Any], directory: Path) -> IdentifierScheme: ...

    @property
    def item_ids(self) -> list[str]:
        """Raw ids of the items the scheme currently holds, in the order they were added."""
        return list(self._item_tokens)

    def __len__(self) -> int:
        return len(self._item_tokens)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._item_tokens

    def item_tokens(self, item_id: str) -> tuple[str, ...]:
        """The token strings `item_id` is written as; KeyError naming the item if unknown."""
        try:
            return self._item_tokens[item_id]
        except KeyError:
            raise KeyError(f"item {item_id!r} has no {self.name} identifier") from None

    def item_for_tokens(self, tokens: Sequence[str]) -> str | None:
        """The raw id written exactly as `tokens`, else None."""
        return self._token_owner.get(tuple(tokens))

    def remove_item(self, item_id: str) -> None:
        """Forget an item; its identifier becomes free."""
        self._release(item_id)

    def _assign(self, item_id: str, tokens: Sequence[str]) -> None:
        """Record `item_id` -> `tokens`; refuses an item already held or tokens another item owns."""
        tokens = tuple(tokens)
        if item_id in self._item_tokens:
            raise ValueError(f"item {item_id!r} already has a {self.name} identifier")
        owner = self._token_owner.get(tokens)
        if owner is not None:
            raise ValueError(f"item {item_id!r}: identifier {tokens} is already taken by item {owner!r}")
        self._item_tokens[item_id] = tokens
        self._token_owner[tokens] = item_id

    def _release(self, item_id: str) -> tuple[str, ...]:
        """Drop `item_id` and free its tokens (returned); KeyError naming the item if unknown."""
        tokens = self.item_tokens(item_id)
        del self._item_tokens[item_id]
        del self._token_owner[tokens]
        return tokens

    def item_text(self, item_id: str) -> str:
        """The identifier as one string (tokens concatenated), as it appears in prompts."""
        return "".join(self.item_tokens(item_id))

    def mapping(self) -> dict[str, tuple[str, ...]]:
        """raw item id -> token strings, for every item (a copy)."""
        return dict(self._item_tokens)

    def save(self, directory: Path) -> None:
        """Write `scheme.json` (and any extra files) into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        doc = {"scheme": self.name, "version": FORMAT_VERSION, **self._state()}
        (directory / SCHEME_FILE).write_text(json.dumps(doc, ensure_ascii=False))

    @classmethod
    def load(cls, directory: Path) -> IdentifierScheme:
        """Load a scheme saved by `save`; refuses a directory holding another scheme."""
        doc = _read_scheme_file(directory)
        if cls is not IdentifierScheme and doc["scheme"] != cls.name:
            raise ValueError(f"{directory} holds scheme {doc['scheme']!r}, not {cls.name!r}")
        return scheme_class(doc["scheme"])._from_state(doc, Path(directory))


def _read_scheme_file(directory: Path) -> dict[str, Any]:
    path = Path(directory) / SCHEME_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no identifier scheme at {directory} (missing {SCHEME_FILE})")
    doc = json.loads(path.read_text())
    if doc.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported scheme format version {doc.get('version')!r}")
    return doc


def scheme_class(name: str) -> type[IdentifierScheme]:
    """The registered class for `name` ("sid", "atomic", "titles")."""
    for module in _BUILTIN_MODULES:
        importlib.import_module(f"training.identifiers.{module}")
    try:
        return SCHEMES[name]
    except KeyError:
        raise ValueError(f"unknown identifier scheme {name!r}; known: {sorted(SCHEMES)}") from None


def build_scheme(
    name: str, catalog: Catalog, embeddings: np.ndarray | None = None, **options: Any
) -> IdentifierScheme:
    """Build the scheme called `name` over `catalog` (embeddings: [len(catalog), d], SIDs only)."""
    return scheme_class(name).build(catalog, embeddings, **options)


def load_scheme(directory: Path) -> IdentifierScheme:
    """Load whichever scheme `directory/scheme.json` names."""
    return IdentifierScheme.load(directory)
