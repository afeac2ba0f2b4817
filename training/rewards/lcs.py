"""RecLLM-R1 list reward: normalised, position-weighted LCS with error penalties (recllm_r1.txt §4.2).

The paper states the idea in one paragraph and gives no formula: "a normalized, position-weighted
Longest Common Subsequence (LCS) algorithm, where higher rewards are assigned to predictions with
more correct items ranked at earlier positions", plus "specific penalties" against "common errors".
The weights, normalisation and penalties below are our concrete reading (see the docstring).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

from training.rewards.registry import register_reward


def position_weight(position: int) -> float:
    """w(i) = 1/log2(i+1) for a 1-based list position i (the DCG discount: w(1)=1, w(2)=0.631, ...)."""
    return 1.0 / math.log2(position + 1)


def weighted_lcs(recommended: Sequence[str], next_items: Sequence[str]) -> float:
    """max over common subsequences (i_1<..<i_m of recommended, j_1<..<j_m of next_items, equal items)
    of sum_a w(i_a): the LCS whose matches are weighted by their position in the recommended list.

    DP over prefixes: W[i][j] = max(W[i-1][j], W[i][j-1], W[i-1][j-1] + w(i) if rec_i == next_j).
    """
    prev = [0.0] * (len(next_items) + 1)
    for i, item in enumerate(recommended, start=1):
        cur = [0.0] * (len(next_items) + 1)
        for j, want in enumerate(next_items, start=1):
            cur[j] = max(prev[j], cur[j - 1])
            if item == want:
                cur[j] = max(cur[j], prev[j - 1] + position_weight(i))
        prev = cur
    return prev[-1]


def count_list_errors(recommended: Sequence[str], valid_items: Collection[str] | None) -> tuple[int, int]:
    """(duplicates, invalid): positions repeating an earlier item; positions whose item is not a valid id."""
    seen: set[str] = set()
    duplicates = invalid = 0
    for item in recommended:
        duplicates += item in seen
        seen.add(item)
        invalid += valid_items is not None and item not in valid_items
    return duplicates, invalid


@register_reward("list_lcs")
def compute_list_lcs_reward(
    lists: Sequence[Sequence[str]],
    next_items: Sequence[str],
    k: int,
    valid_items: Collection[str] | None = None,
    duplicate_penalty: float = 1.0,
    invalid_penalty: float = 1.0,
) -> list[float]:
    """r = WLCS(R, T) / Z - duplicate_penalty * n_dup / k - invalid_penalty * n_inv / k.

    R = the first k items of a recommended list (raw ids, as generated); T = the user's next
    items in time order. WLCS (`weighted_lcs`) weights a match at 1-based position i of R by
    w(i) = 1/log2(i+1), so correct items at earlier positions earn more, and the order of T must
    be respected. Z = sum_{i=1..min(k, |T|)} w(i) is the WLCS of the ideal list (T itself), so the
    first term lies in [0, 1] and is 1 exactly when R starts with T (or with T's first k items).
    Penalties (the "common errors" of recllm_r1.txt §4.2): n_dup = positions of R that repeat an
    earlier item, n_inv = positions whose item is not in `valid_items` (not counted when None);
    each costs penalty / k, so a list of k errors of one kind costs the full penalty.
    Empty R or empty T: first term 0. Length and distinctness as a format are `format_list`'s job.

    lists: G recommended lists; next_items: T; k: the requested list length. Returns G floats.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    norm = sum(position_weight(i) for i in range(1, min(k, len(next_items)) + 1))
    rewards = []
    for recommended in lists:
        top = list(recommended[:k])
        score = weighted_lcs(top, next_items) / norm if norm > 0 else 0.0
        n_dup, n_inv = count_list_errors(top, valid_items)
        rewards.append(score - duplicate_penalty * n_dup / k - invalid_penalty * n_inv / k)
    return rewards
