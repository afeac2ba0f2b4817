"""One level of the trie beam over exact child log-probs, as pure functions (DESIGN.md §8, "Top-K items").

For engines that score a beam's children by asking for their log-probs (vLLM's
`logprob_token_ids`) instead of running the model themselves: the synchronous rollout
backend (training/rollout/vllm_backend.py) and the async direct engine
(serving/engine/vllm_engine.py). The search is the one `TrieBeamSearch` runs
(training/rollout/beam.py): `width` beams per level, score = sum of exact log P(child),
prefixes in `dead` (every item under them excluded) never become beams, and a finished
item keeps its place at no cost (variable-length ids), so both give the same items.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from training.identifiers.trie import ItemTrie

Prefix = tuple[int, ...]
Beam = tuple[Prefix, float]  # (generated identifier prefix, log P(prefix | prompt))
START: list[Beam] = [((), 0.0)]


def open_prefixes(trie: ItemTrie, beams: Sequence[Beam]) -> list[Prefix]:
    """Prefixes of `beams` that still have trie children (need scoring at this level), in beam order."""
    return [prefix for prefix, _ in beams if trie.allowed_next(prefix)]


def next_beams(trie: ItemTrie, beams: Sequence[Beam], scored: Mapping[Prefix, Mapping[int, float]],
               dead: Collection[Prefix], width: int) -> list[Beam]:
    """The next level's beams, best first: every child of an open beam (score + log P(child)) unless dead,
    and every finished item as it is; then the best `width`.

    scored: open prefix -> {child token: exact log P(child | prompt + prefix)} (`open_prefixes` says which).
    """
    rows: list[Beam] = []
    for prefix, score in beams:
        if prefix in scored:
            rows += [(prefix + (token,), score + lp) for token, lp in scored[prefix].items()
                     if prefix + (token,) not in dead]
        elif trie.item_at(prefix) is not None and prefix not in dead:
            rows.append((prefix, score))
    return sorted(rows, key=lambda beam: -beam[1])[:width]


def best_items(trie: ItemTrie, beams: Sequence[Beam], k: int) -> list[tuple[str, float]]:
    """The k best finished items of the final beams: (raw item id, log P), best first, distinct."""
    done = [(trie.item_at(prefix), score) for prefix, score in beams if trie.item_at(prefix) is not None]
    return sorted(done, key=lambda pair: -pair[1])[:k]
