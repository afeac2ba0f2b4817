"""Resolvers: the text inside `<answer>…</answer>` -> raw item id, one per identifier scheme (DESIGN.md §4).

A resolver is `Callable[[str], str | None]` for `training.cot.parse.parse_reasoning`; None means "no such
item" (the parser's "unknown_item").

- titles (text models): the catalog display name ("Title", or "Title [id]" where two items share a
  title), or a raw title that names exactly one item; whitespace collapsed, surrounding quotes dropped,
  then an exact match, else a case-insensitive one when that is unambiguous.
- atomic / SID tokens (the tiny policy): the answer must be only identifier tokens `<...>`, optionally
  separated by whitespace (a decoded word-level tokenizer puts spaces between them); the token tuple is
  looked up in the scheme, or, with `make_trie_resolver`, mapped to token ids and walked down the item
  trie, so a prefix, an extra level or a path outside the trie resolves to None.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping

from training.catalog import Catalog
from training.cot.parse import Resolver
from training.identifiers.base import IdentifierScheme
from training.identifiers.trie import ItemTrie

_TOKEN_RUN = re.compile(r"(?:\s*<[^<>\s]+>)+\s*")
_TOKEN = re.compile(r"<[^<>\s]+>")
_QUOTES = "\"'`“”‘’"


def split_item_tokens(text: str) -> tuple[str, ...] | None:
    """"<s0_1> <s1_2>" -> ("<s0_1>", "<s1_2>"); None if the text holds anything besides tokens and spaces."""
    if not _TOKEN_RUN.fullmatch(text):
        return None
    return tuple(_TOKEN.findall(text))


def normalise_title(text: str) -> str:
    """Collapse whitespace and drop surrounding quotes: '  "Heat  (1995)" ' -> 'Heat (1995)'."""
    return " ".join(text.split()).strip(_QUOTES).strip()


def make_title_resolver(catalog: Catalog) -> Resolver:
    """Display names and unambiguous raw titles -> raw id (exact, then case-insensitive when unique)."""
    exact: dict[str, str] = {}
    raw_counts = Counter(normalise_title(info.title) for info in catalog.items)
    for info in catalog.items:
        title = normalise_title(info.title)
        if raw_counts[title] == 1:
            exact[title] = info.item_id
        exact[normalise_title(catalog.display_name(info.item_id))] = info.item_id
    folded_counts = Counter(name.casefold() for name in exact)
    folded = {name.casefold(): item for name, item in exact.items() if folded_counts[name.casefold()] == 1}

    def resolve(text: str) -> str | None:
        name = normalise_title(text)
        return exact.get(name) or folded.get(name.casefold())

    return resolve


def make_token_resolver(scheme: IdentifierScheme) -> Resolver:
    """Identifier tokens (atomic `<i_42>`, SID `<s0_1><s1_2><s2_0>`) -> the item the scheme writes that way."""

    def resolve(text: str) -> str | None:
        tokens = split_item_tokens(text)
        return None if tokens is None else scheme.item_for_tokens(tokens)

    return resolve


def make_trie_resolver(trie: ItemTrie, vocab: Mapping[str, int]) -> Resolver:
    """Identifier tokens -> token ids (`tokenizer.get_vocab()`) -> the item at exactly that trie path.

    The check constrained decoding relies on: an unknown token, an incomplete path (a SID prefix) or a
    path the trie does not hold all give None.
    """

    def resolve(text: str) -> str | None:
        tokens = split_item_tokens(text)
        if tokens is None or any(token not in vocab for token in tokens):
            return None
        return trie.item_at([vocab[token] for token in tokens])

    return resolve


def make_resolver(scheme: IdentifierScheme, catalog: Catalog) -> Resolver:
    """The resolver for a scheme: titles -> `make_title_resolver`, token schemes -> `make_token_resolver`."""
    return make_title_resolver(catalog) if scheme.name == "titles" else make_token_resolver(scheme)
