"""Shared by the reasoning-RL tests: a PolicyRecommender with a reasoning manifest, and an RL config."""

from __future__ import annotations

from training.config import RLConfig
from training.models.policy_recommender import PolicyRecommender


def reasoning_policy(kit, policy_for) -> PolicyRecommender:
    """A fresh tiny policy over the kit, with the manifest entry a reasoning-SFT bundle has."""
    policy = PolicyRecommender(policy_for(kit), kit.tokenizer, kit.scheme, kit.catalog, beam_width=5)
    policy.manifest = {"name": "fixture", "generation": {"reasoning": {"max_total_tokens": 256}}}
    return policy


def reasoning_rl_config(**overrides) -> RLConfig:
    base = dict(mode="reasoning", reward="prefix", advantage="srpo", pass_k=2, group_size=4, temperature=1.0,
                max_think_tokens=5, prompts_per_step=3, steps=2, eval_every=100, lr=1e-2)
    return RLConfig(**{**base, **overrides})
