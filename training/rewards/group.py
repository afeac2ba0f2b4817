"""One call shape for every direct-mode reward: a sampled group -> one float per completion.

The registered rewards take what each needs (items, token paths, log-probs); the RL
loop hands a `RolloutGroup` and the reward's name, and this module passes the parts on.
"""

from __future__ import annotations

from dataclasses import dataclass

from training.rewards.registry import get_reward


@dataclass(frozen=True)
class RolloutGroup:
    """G completions of one prompt: raw item ids, their token paths and sequence log-probs."""

    items: tuple[str, ...]
    paths: tuple[tuple[int, ...], ...]
    logprobs: tuple[float, ...]
    target: str
    target_path: tuple[int, ...]


def score_group(name: str, group: RolloutGroup, *, num_levels: int | None = None, beta: float = 0.5) -> list[float]:
    """Rewards of `group` under the registered reward `name` (hit | rank_ndcg | prefix).

    num_levels: H for the prefix reward (SID levels without the disambiguation slot).
    """
    reward = get_reward(name)
    if name == "hit":
        return reward(group.items, group.target)
    if name == "rank_ndcg":
        return reward(group.items, group.logprobs, group.target)
    if name == "prefix":
        if not num_levels:
            raise ValueError("the prefix reward needs the number of SID levels (a multi-level identifier scheme)")
        return reward(group.paths, group.target_path, num_levels, beta)
    raise ValueError(f"reward {name!r} does not score single-item groups; use hit, rank_ndcg or prefix")
