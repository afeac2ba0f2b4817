"""GREAM residual-sensitive prefix reward (SRPO; gream.txt §5.1, Eq. 13-14)."""

from __future__ import annotations

from collections.abc import Sequence

from training.rewards.registry import register_reward


def longest_common_prefix(sampled: Sequence[int], target: Sequence[int], num_levels: int) -> int:
    """ell = max{k in 0..H : sampled_j == target_j for all j <= k} (gream.txt Eq. 13).

    Only the first H positions count; a sampled path shorter than H (a truncated completion)
    can only match the positions it has.
    """
    ell = 0
    for got, want in zip(sampled[:num_levels], target[:num_levels], strict=False):
        if got != want:
            break
        ell += 1
    return ell


@register_reward("prefix")
def compute_prefix_reward(
    sampled: Sequence[Sequence[int]], target: Sequence[int], num_levels: int, beta: float = 0.5
) -> list[float]:
    """r_i = (ell_i / H) ** beta, ell_i = common-prefix length over the H RQ levels (gream.txt Eq. 14).

    sampled: G token-id tuples, the trie paths decoded for the G completions;
    target: the target item's token-id tuple (H semantic levels + the disambiguation slot);
    num_levels: H, the RQ-KMeans levels without the disambiguation slot (which is excluded:
    two items that differ only there share all H codes and both get 1.0 -- exactness is
    `hit`'s job, as GREAM's v_i in Eq. 15 is separate from r^rs);
    beta: concavity in (0, 1], 1/2 by default as in the paper.
    Each level has its own tokens, so comparing token ids position by position compares codes.
    ell = 0 gives 0.0; ell = H gives 1.0. Returns G floats.
    """
    if num_levels < 1:
        raise ValueError(f"num_levels (H) must be >= 1, got {num_levels}")
    if not 0.0 < beta <= 1.0:
        raise ValueError(f"beta must be in (0, 1], got {beta}")
    if len(target) < num_levels:
        raise ValueError(f"target has {len(target)} tokens, fewer than H={num_levels} levels")
    return [(longest_common_prefix(path, target, num_levels) / num_levels) ** beta for path in sampled]
