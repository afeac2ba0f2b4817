"""RecLLM-R1's whole list reward: position-weighted LCS + error penalties + format (recllm_r1.txt §3.3, §4.2).

The paper names the parts and gives no weights: "a normalized, position-weighted Longest Common
Subsequence (LCS) algorithm", "specific penalties" against "the recurrence of common errors", and
"the default formats ... reward functions provided by VeRL" (§4.2). The LCS term and the duplicate /
invalid penalties are `lcs.compute_list_lcs_reward`, the format check is `format_reward.format_list`;
this module adds the wrong-length penalty and combines the parts the way VeRL's default rule-based
scores mix accuracy and format: (1 - f) * accuracy + f * format (VeRL geo3k, f = 0.1).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from training.rewards.format_reward import compute_list_format_reward
from training.rewards.lcs import compute_list_lcs_reward, count_list_errors
from training.rewards.registry import register_reward


def length_error(n_items: int, k: int) -> float:
    """min(1, |n - k| / k): the share of the requested length a list misses or overshoots (0 when n = k)."""
    return min(1.0, abs(n_items - k) / k)


@register_reward("list_lcs_recllm")
def recllm_list_reward(
    lists: Sequence[Sequence[str]],
    reference: Sequence[str],
    k: int,
    valid_items: Collection[str],
    format_weight: float = 0.1,
    duplicate_penalty: float = 1.0,
    invalid_penalty: float = 1.0,
    length_penalty: float = 1.0,
) -> list[float]:
    """RecLLM-R1 list reward of each of G lists R against the user's next items T (§4.2):

        r(R) = (1 - f) * WLCS(R[:k], T) / Z + f * 1[R well formed]
               - p_dup * n_dup / k - p_inv * n_inv / k - p_len * min(1, | |R| - k | / k)

    WLCS / Z: the normalised position-weighted LCS of `lcs.compute_list_lcs_reward` (a match at list
    position i weighs 1/log2(i+1); Z = the WLCS of the ideal list), in [0, 1].
    1[well formed]: `format_list` (exactly k distinct items, all in `valid_items`); f = format_weight.
    Errors ("common errors", §4.2): n_dup = positions of R[:k] repeating an earlier item, n_inv =
    positions of R[:k] whose item is not in `valid_items`, | |R| - k | = a list that is too short or
    too long. With trie-constrained, exclusion-masked decoding all three are 0 by construction, and
    r = (1 - f) * WLCS / Z + f lies in [f, 1].

    lists: G recommended lists (raw ids); reference: T, in time order; k: the requested list length.
    Returns G floats.
    """
    if not 0.0 <= format_weight <= 1.0:
        raise ValueError(f"format_weight must be in [0, 1], got {format_weight}")
    normalised = compute_list_lcs_reward(lists, reference, k, None, duplicate_penalty=0.0)  # WLCS / Z only
    formats = compute_list_format_reward(lists, k, valid_items)
    rewards = []
    for items, lcs, well_formed in zip(lists, normalised, formats, strict=True):
        n_dup, n_inv = count_list_errors(items[:k], valid_items)
        errors = (duplicate_penalty * n_dup + invalid_penalty * n_inv) / k
        errors += length_penalty * length_error(len(items), k)
        rewards.append((1.0 - format_weight) * lcs + format_weight * well_formed - errors)
    return rewards
