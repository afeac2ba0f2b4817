"""Format rewards: 1.0 for a well-formed completion of its mode, else 0.0.

RecLLM-R1 adds a format reward next to its list reward ("the default formats ... reward
functions provided by VeRL", recllm_r1.txt §4.2): a 0/1 check of the output's shape.
Ours checks the shape of the recommendation itself, per mode (DESIGN.md §1); parsing a
completion's text (tags, separators) into items is the caller's job.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from training.rewards.registry import register_reward


@register_reward("format_direct")
def compute_direct_format_reward(ended_on_item: Sequence[bool]) -> list[float]:
    """r_i = 1[decoding of completion i ended on a complete trie path, i.e. on a catalog item].

    Direct mode decodes one identifier under the prefix trie; a completion is malformed when it
    stops (EOS, length limit) before reaching a leaf. The caller knows this from the trie walk and
    passes one bool per completion. Returns G floats.
    """
    return [1.0 if ended else 0.0 for ended in ended_on_item]


def is_well_formed_list(items: Sequence[str], k: int, valid_items: Collection[str]) -> bool:
    """Exactly k items, no repeats, every one a valid raw item id."""
    return len(items) == k and len(set(items)) == k and all(item in valid_items for item in items)


@register_reward("format_list")
def compute_list_format_reward(lists: Sequence[Sequence[str]], k: int, valid_items: Collection[str]) -> list[float]:
    """r_i = 1[list i holds exactly k distinct items, all in `valid_items`] (list mode).

    lists: G recommended lists (raw ids, as parsed); k: requested length; valid_items: the
    catalog's raw ids (a set, for speed). Returns G floats.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return [1.0 if is_well_formed_list(items, k, valid_items) else 0.0 for items in lists]
