"""Reward functions of the RL engine (DESIGN.md §5), each registered by name.

Importing this package registers every reward: hit, rank_ndcg, prefix, list_lcs,
format_direct, format_list, list_lcs_recllm, rporec_* (RPORec stage II), recpo (R²ec).
"""

from training.rewards import format_reward, hit, lcs, prefix, rank, recllm_list, recpo, rporec  # noqa: F401  (registers the rewards)
from training.rewards.registry import REWARDS, get_reward, register_reward

__all__ = ["REWARDS", "get_reward", "register_reward"]
