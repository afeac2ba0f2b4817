"""The level beam over exact child log-probs: exhaustive when wide, dead prefixes masked, finished items kept."""

from __future__ import annotations

import math

import pytest

from training.identifiers.trie import ItemTrie
from training.rollout.level_beam import START, best_items, next_beams, open_prefixes

pytestmark = pytest.mark.timeout(10)
ITEMS = {"a": [1, 3], "b": [1, 4], "c": [2, 3], "d": [2, 4], "e": [5, 9]}  # "e" ends early: a 2-level id
LOGP = {(): {1: -0.5, 2: -1.0, 5: -2.5}, (1,): {3: -1.5, 4: -0.2}, (2,): {3: -0.1, 4: -2.0}, (5,): {9: 0.0}}


def _search(trie: ItemTrie, k: int, width: int, dead=frozenset()) -> list[tuple[str, float]]:
    beams = list(START)
    for _ in range(3):
        prefixes = open_prefixes(trie, beams)
        if not prefixes:
            break
        beams = next_beams(trie, beams, {p: {t: LOGP[p][t] for t in trie.allowed_next(p)} for p in prefixes},
                           dead, width)
    return best_items(trie, beams, k)


def test_a_wide_beam_ranks_every_item_exactly():
    trie = ItemTrie.build(ITEMS)
    exact = sorted(((i, sum(LOGP[tuple(ids[:j])][t] for j, t in enumerate(ids))) for i, ids in ITEMS.items()),
                   key=lambda pair: -pair[1])
    got = _search(trie, k=5, width=10)
    assert [i for i, _ in got] == [i for i, _ in exact]
    assert [s for _, s in got] == pytest.approx([s for _, s in exact])


def test_a_narrow_beam_prunes_and_dead_prefixes_never_become_beams():
    trie = ItemTrie.build(ITEMS)
    assert [i for i, _ in _search(trie, k=2, width=2)] == ["b", "c"]  # (1,) and (2,) survive level 1
    dead = trie.dead_prefixes({"b", "c", "d"})
    got = _search(trie, k=5, width=2, dead=dead)
    assert [i for i, _ in got] == ["a", "e"] and got[0][1] == pytest.approx(-2.0)
    assert all(math.isfinite(s) for _, s in got)


def test_a_finished_item_keeps_its_place_at_no_cost():
    trie = ItemTrie.build({"x": [7], "y": [8, 1]})
    beams = next_beams(trie, [((7,), -0.3), ((8,), -0.1)], {(8,): {1: -1.0}}, frozenset(), 2)
    assert beams == [((7,), -0.3), ((8, 1), -1.1)]
