"""Cold start: new items join the FAISS index (reasoning mode) and the item trie (direct mode) together.

Both structures must name the same items, or one mode recommends what the other cannot decode.
`add_cold_items` and `remove_items_everywhere` check everything first and roll back what they
already did when a step fails, so a failure leaves index and trie as they were.

A new item's identifier comes from its text embedding through the fitted RQ-KMeans scheme
(`training/identifiers/rqkmeans.py`: nearest code per level, then the smallest free
disambiguation code under that prefix). Atomic identifiers cannot take new items at serving
time: each item is its own vocabulary token, which the trained policy has no embedding for.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np

from serving.retrieval.index import ItemIndex, as_matrix
from training.identifiers.base import IdentifierScheme
from training.identifiers.rqkmeans import SemanticIdScheme
from training.identifiers.trie import ItemTrie


class ColdStartError(ValueError):
    """A new item cannot be given an identifier the serving policy can decode."""


def add_cold_items(index: ItemIndex, trie: ItemTrie, items: Mapping[str, tuple[np.ndarray, Sequence[int]]]) -> None:
    """Add new items to the index and the trie, all or nothing.

    items: raw id -> (item vector [index.dim], identifier token ids). Raises ValueError for an id
    already in either structure or a wrong vector shape, `DuplicateSequenceError` when a sequence
    is taken; then neither structure changed.
    """
    ids = list(items)
    for item_id in ids:
        if item_id in index or item_id in trie:
            where = "index" if item_id in index else "trie"
            raise ValueError(f"item {item_id!r} is already in the {where}; cold items must be new")
    vectors = _stack(index, [vec for vec, _ in items.values()])
    inserted: list[str] = []
    try:
        for item_id, (_, seq) in items.items():
            trie.insert(item_id, seq)
            inserted.append(item_id)
        index.add_items(ids, vectors)
    except BaseException:
        for item_id in reversed(inserted):
            trie.delete(item_id)
        raise


def _stack(index: ItemIndex, vectors: Sequence[np.ndarray]) -> np.ndarray:
    """[m, index.dim] float32 from m vectors of shape [dim] (ValueError otherwise)."""
    if not vectors:
        return np.zeros((0, index.dim), dtype=np.float32)
    rows = [np.asarray(v, dtype=np.float32) for v in vectors]
    bad = next((r.shape for r in rows if r.shape != (index.dim,)), None)
    if bad is not None:
        raise ValueError(f"cold item vectors must have shape ({index.dim},), got {bad}")
    return as_matrix(np.stack(rows), len(rows), index.dim)


def remove_items_everywhere(index: ItemIndex, trie: ItemTrie, item_ids: Collection[str],
                            scheme: IdentifierScheme | None = None) -> None:
    """Remove items from the index, the trie and (if given) the scheme; KeyError first if any is missing."""
    unique = list(dict.fromkeys(item_ids))
    for item_id in unique:
        for name, holder in (("index", index), ("trie", trie), ("scheme", scheme)):
            if holder is not None and item_id not in holder:
                raise KeyError(f"item {item_id!r} is not in the {name}")
    index.remove_items(unique)
    for item_id in unique:
        trie.delete(item_id)
        if scheme is not None:
            scheme.remove_item(item_id)


def assign_cold_identifiers(scheme: IdentifierScheme, vocab: Mapping[str, int],
                            embeddings: Mapping[str, np.ndarray]) -> dict[str, list[int]]:
    """Give new items semantic IDs from their text embeddings and return their token ids.

    scheme: a fitted `SemanticIdScheme` (gains the items); vocab: the policy tokenizer's token -> id;
    embeddings: raw id -> text embedding [d] (the space the scheme was fitted in).
    Raises ColdStartError for non-SID schemes, or when an identifier needs a token the vocabulary
    lacks (a disambiguation code beyond the trained codebook); then the scheme is unchanged.
    """
    if not isinstance(scheme, SemanticIdScheme):
        raise ColdStartError(_unsupported(scheme))
    sizes, added, out = list(scheme.codebook_sizes), [], {}
    try:
        for item_id, emb in embeddings.items():
            scheme.add_item(item_id, embedding=_check_embedding(scheme, item_id, emb))
            added.append(item_id)
            out[item_id] = _token_ids(scheme.item_tokens(item_id), vocab, item_id)
        return out
    except BaseException:
        _forget(scheme, added, sizes)
        raise


def _forget(scheme: SemanticIdScheme, item_ids: Sequence[str], sizes: list[int]) -> None:
    """Undo `add_item` for item_ids and restore the codebook sizes (the disambiguation level may have grown)."""
    for item_id in item_ids:
        scheme.remove_item(item_id)
    scheme.codebook_sizes[:] = sizes


def add_cold_sid_items(index: ItemIndex, trie: ItemTrie, scheme: IdentifierScheme, vocab: Mapping[str, int],
                       items: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, list[int]]:
    """Assign semantic IDs and add the items to scheme, trie and index, all or nothing.

    items: raw id -> (item vector [index.dim] for FAISS, text embedding [d] for the scheme).
    Returns raw id -> identifier token ids.
    """
    sizes = list(scheme.codebook_sizes)
    sequences = assign_cold_identifiers(scheme, vocab, {i: text for i, (_, text) in items.items()})
    try:
        add_cold_items(index, trie, {i: (vec, sequences[i]) for i, (vec, _) in items.items()})
    except BaseException:
        _forget(scheme, list(sequences), sizes)
        raise
    return sequences


def _check_embedding(scheme: SemanticIdScheme, item_id: str, emb: np.ndarray) -> np.ndarray:
    dim = scheme.centroids[0].shape[1]
    emb = np.asarray(emb, dtype=np.float32)
    if emb.shape != (dim,) or not np.isfinite(emb).all():
        raise ValueError(f"item {item_id!r}: text embedding must be finite with shape ({dim},), got {emb.shape}")
    return emb


def _token_ids(tokens: Sequence[str], vocab: Mapping[str, int], item_id: str) -> list[int]:
    missing = [t for t in tokens if t not in vocab]
    if missing:
        raise ColdStartError(
            f"item {item_id!r} needs identifier token(s) {missing} that the policy's vocabulary lacks "
            "(its code prefix already holds as many items as the trained disambiguation level has codes); "
            "retrain or extend the policy to serve it in direct mode")
    return [vocab[t] for t in tokens]


def _unsupported(scheme: IdentifierScheme) -> str:
    if scheme.name == "atomic":
        return ("atomic identifiers cannot take new items at serving time: every item is its own vocabulary "
                "token, so a new item needs a new token and a policy trained on it; use semantic IDs ('sid') "
                "for cold start, or serve new items in reasoning mode (FAISS) only")
    return f"cold-start identifiers are only assigned for semantic IDs ('sid'), not for scheme {scheme.name!r}"
