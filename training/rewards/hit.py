"""Binary hit reward (RISER; riser.txt §2.3, the reward under Eq. 2)."""

from __future__ import annotations

from collections.abc import Sequence

from training.rewards.registry import register_reward


@register_reward("hit")
def compute_hit_reward(items: Sequence[str], target: str) -> list[float]:
    """r_i = 1[o_i = y]: 1.0 when sampled item i is the target item, else 0.0.

    riser.txt §2.3: "a positive reward for a 'hit' and a negative reward otherwise".
    We use {1, 0}; under the group z-score of GRPO (riser.txt Eq. 2) any two levels
    a > b give the same advantages, so {1, -1} and {1, 0} train identically.

    items: G raw item ids (one decoded item per completion; an invalid completion
    may be any string that is not a catalog id, it simply never equals the target).
    target: the raw id of the ground-truth next item.
    Items are compared as ids, exactly (no text normalisation).
    Returns G floats.
    """
    return [1.0 if item == target else 0.0 for item in items]
