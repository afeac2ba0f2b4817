"""Rollout side of the RL step: sample groups under the trie, dedupe, inject the target, score.

Plain functions over `TrieSampler` completions; the loop in `rl.py` calls them.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from training.algorithms.sampling import oversample_dedupe
from training.config import RLConfig
from training.data.types import Sample
from training.identifiers.trie import ItemTrie
from training.rewards.group import RolloutGroup, score_group
from training.rollout.backend import RolloutEngine
from training.rollout.sampling import Completion


@dataclass(frozen=True)
class StepRollout:
    """One step's groups: G completions per prompt, rewards and exact hits [B, G], rollout stats."""

    prompts: list[list[int]]
    groups: list[list[Completion]]
    rewards: torch.Tensor
    hits: torch.Tensor
    targets: list[str]
    stats: dict[str, float]


def path_completion(trie: ItemTrie, item: str, path: Sequence[int]) -> Completion:
    """A completion for a known item (the injected target): child counts from the trie, log-probs unknown (0)."""
    counts = tuple(len(trie.allowed_next(tuple(path[:j]))) for j in range(len(path)))
    return Completion(item, tuple(path), tuple(0.0 for _ in path), counts)


def build_group(drawn: list[Completion], target: str, target_path: Sequence[int], cfg: RLConfig,
                trie: ItemTrie, rng: random.Random) -> tuple[list[Completion], float]:
    """Dedupe m draws down to G (riser.txt Eq. 5) when oversampling, then optionally inject the target."""
    duplicate_share = 0.0
    if cfg.oversample:
        kept = oversample_dedupe([c.item for c in drawn], cfg.group_size, rng)
        drawn, duplicate_share = [drawn[i] for i in kept.indices], kept.duplicate_share
    group = list(drawn[: cfg.group_size])
    if cfg.inject_target and target in trie and all(c.item != target for c in group):
        group[-1] = path_completion(trie, target, target_path)
    return group, duplicate_share


def collect_rollout(engine: RolloutEngine, trie: ItemTrie, prompts: list[list[int]], batch: Sequence[Sample],
                    cfg: RLConfig, item_paths: Mapping[str, Sequence[int]], num_levels: int | None,
                    rng: random.Random, generator: torch.Generator) -> StepRollout:
    """Sample, shape and score one batch of groups. rewards: [B, G]."""
    draws = max(cfg.group_size, cfg.oversample)
    sampled = engine.sample(prompts, draws, cfg.temperature, cfg.top_k, generator)
    groups, dup_shares, rewards = [], [], []
    for drawn, sample in zip(sampled, batch, strict=True):
        target_path = tuple(item_paths.get(sample.target, ()))
        group, dup = build_group(drawn, sample.target, target_path, cfg, trie, rng)
        groups.append(group)
        dup_shares.append(dup if cfg.oversample else _duplicate_share(drawn))
        scored = RolloutGroup(tuple(c.item for c in group), tuple(c.token_ids for c in group),
                              tuple(c.logprob for c in group), sample.target, target_path)
        rewards.append(score_group(cfg.reward, scored, num_levels=num_levels, beta=cfg.prefix_beta))
    reward_t = torch.tensor(rewards, dtype=torch.float32)
    hits = torch.tensor([[c.item == s.target for c in g] for g, s in zip(groups, batch, strict=True)])
    stats = {"reward_mean": reward_t.mean().item(), "reward_std": reward_t.std().item(),
             "hit_rate": hits.float().mean().item(), "groups_with_hit": hits.any(dim=1).float().mean().item(),
             "duplicate_share": sum(dup_shares) / len(dup_shares),
             "entropy": sampled_entropy(sampled)}
    return StepRollout(prompts, groups, reward_t, hits, [s.target for s in batch], stats)


def sampled_entropy(groups: Sequence[Sequence[Completion]]) -> float:
    """Monte Carlo policy entropy per item, H = E_y[-log pi(y|x)], from the sampled completions.

    Unbiased at temperature 1 (samples drawn from the constrained policy); at another temperature it is
    the cross-entropy of the tempered sampler against the policy.
    """
    return -sum(c.logprob for g in groups for c in g) / sum(len(g) for g in groups)


def _duplicate_share(drawn: list[Completion]) -> float:
    return 1.0 - len({c.item for c in drawn}) / len(drawn) if drawn else 0.0
