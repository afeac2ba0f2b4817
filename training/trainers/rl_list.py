"""RecLLM-R1's list action in the RL engine (recllm_r1.txt §3.3, §4.2): rollout, reward, loss, one step.

`rl.action: list` makes `rl._step` call `list_step`: per prompt, G lists of K distinct items are
sampled under the trie (`sample_lists`), scored by a list reward (`list_lcs_recllm`) against the
prompt's reference list, turned into GRPO advantages, and trained with the paper's J_GRPO: the
unclipped token-level ratio * A plus beta * k3 KL to the reference policy, both averaged as
1/G sum_k 1/|o_k| sum_t (§3.3). The reference policy pi_ref is "often the SFT model" (§3.3): here a
frozen copy of the policy taken at the first list step of a run (= RL start), made only when
kl_coef > 0. List rollouts always run on our KV-cache sampler over the policy module.

Reference lists ("the user's next items"; the paper's labels are item sequences, §3.1): our samples
carry one target, so a prompt's reference is its target followed by the targets of the same user's
samples at the next positions, as far as they are in the RL prompt pool (`following_items`; at most
K items, a gap ends the list). The pool is the RL prompt set (train samples or held-out validation
samples), so no item of another part of the split enters a reward; `train_rl` builds it once from its
prompts. Without a pool (`following` None) the reference is the target alone, and the LCS reward is
1/log2(i+1) for the target at list position i, else 0.
"""

from __future__ import annotations

import copy
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from training.algorithms.advantages import zero_variance_groups
from training.algorithms.losses import get_loss
from training.config import RLConfig
from training.data.types import Sample
from training.rewards import recllm_list  # noqa: F401  (registers list_lcs_recllm)
from training.rewards.registry import get_reward
from training.rollout.list_sampling import ListCompletion, sample_lists
from training.rollout.sampling import TrieSampler
from training.rollout.scoring import completion_logprobs
from training.trainers.rl_update import compute_advantages

LIST_REWARDS = ("list_lcs_recllm",)


@dataclass(frozen=True)
class ListRollout:
    """One step's list groups: G lists per prompt, rewards and target hits [B, G], reference lists, stats."""

    prompts: list[list[int]]
    groups: list[list[ListCompletion]]
    rewards: torch.Tensor
    hits: torch.Tensor
    references: list[tuple[str, ...]]
    stats: dict[str, float]


def check_list_config(cfg: RLConfig) -> None:
    """ValueError naming every setting the list action does not support (they are item-action parts)."""
    unsupported = {"control": cfg.control, "oversample": cfg.oversample > 0, "inject_target": cfg.inject_target,
                   "kl_cov_ratio": cfg.kl_cov_ratio > 0, "simpo_weight": cfg.simpo_weight > 0,
                   "certainty_d": cfg.certainty_d is not None, "backend": cfg.backend != "batched"}
    wrong = [name for name, is_set in unsupported.items() if is_set]
    if cfg.reward not in LIST_REWARDS:
        wrong.append(f"reward={cfg.reward!r} (list rewards: {', '.join(LIST_REWARDS)})")
    if wrong:
        raise ValueError(f"rl.action=list does not support: {', '.join(wrong)}")


def following_items(pool: Sequence[Sample], k: int) -> dict[str, tuple[str, ...]]:
    """sample_id -> (target, then the targets of the same user's samples at positions p+1, p+2, ... in `pool`).

    At most k items; the list stops at the first position missing from the pool.
    """
    target_at = {(s.user_id, s.position): s.target for s in pool}
    out = {}
    for s in pool:
        items = [s.target]
        while len(items) < k and (s.user_id, s.position + len(items)) in target_at:
            items.append(target_at[(s.user_id, s.position + len(items))])
        out[s.sample_id] = tuple(items)
    return out


def reference_lists(batch: Sequence[Sample], following: Mapping[str, Sequence[str]] | None) -> list[tuple[str, ...]]:
    """Per sample, its reference list from `following` (see `following_items`), else the target alone."""
    return [tuple((following or {}).get(s.sample_id, (s.target,))) for s in batch]


def score_lists(groups: Sequence[Sequence[ListCompletion]], references: Sequence[Sequence[str]], cfg: RLConfig,
                valid_items) -> torch.Tensor:
    """[B, G] rewards of the configured list reward, weights from `cfg`."""
    reward = get_reward(cfg.reward)
    return torch.tensor([reward([c.items for c in group], reference, cfg.list_length, valid_items,
                                format_weight=cfg.list_format_weight, duplicate_penalty=cfg.list_duplicate_penalty,
                                invalid_penalty=cfg.list_invalid_penalty, length_penalty=cfg.list_length_penalty)
                         for group, reference in zip(groups, references, strict=True)], dtype=torch.float32)


def collect_list_rollout(sampler: TrieSampler, prompts: list[list[int]], batch: Sequence[Sample], cfg: RLConfig,
                         generator: torch.Generator | None,
                         following: Mapping[str, Sequence[str]] | None = None) -> ListRollout:
    """Sample G lists of K items per prompt and score them. rewards, hits (target in the list): [B, G]."""
    groups = sample_lists(sampler, prompts, cfg.group_size, cfg.list_length, cfg.temperature, generator,
                          top_k=cfg.top_k)
    references = reference_lists(batch, following)
    rewards = score_lists(groups, references, cfg, sampler.trie)
    hits = torch.tensor([[s.target in c.items for c in g] for g, s in zip(groups, batch, strict=True)])
    lists = [c for g in groups for c in g]
    slots = sum(len(c.items) for c in lists)
    stats = {"reward_mean": rewards.mean().item(), "reward_std": rewards.std().item(),
             "hit_rate": hits.float().mean().item(), "groups_with_hit": hits.any(dim=1).float().mean().item(),
             "invalid_rate": sum(i not in sampler.trie for c in lists for i in c.items) / slots,
             "duplicate_share": sum(len(c.items) - len(set(c.items)) for c in lists) / slots,
             "reference_length": sum(map(len, references)) / len(references),
             "entropy": -sum(c.logprob for c in lists) / len(lists)}  # Monte Carlo, per list
    return ListRollout(prompts, groups, rewards, hits, references, stats)


@dataclass(frozen=True)
class ListBatch:
    """The lists of the kept groups, flattened: prompts, list token ids, advantages [N]."""

    prompts: list[list[int]]
    token_ids: list[tuple[int, ...]]
    advantages: torch.Tensor
    zero_variance_share: float


def flatten_kept(rollout: ListRollout, cfg: RLConfig) -> ListBatch:
    """GRPO advantages of every list; groups with equal rewards dropped when `drop_zero_variance`."""
    advantages = compute_advantages(rollout.rewards, cfg, rollout.hits)
    n_groups = len(rollout.groups)
    keep = ~zero_variance_groups(rollout.rewards) if cfg.drop_zero_variance else torch.ones(n_groups, dtype=bool)
    rows = [(b, g) for b in range(n_groups) if keep[b] for g in range(len(rollout.groups[b]))]
    adv = torch.stack([advantages[b, g] for b, g in rows]) if rows else torch.zeros(0)
    return ListBatch([rollout.prompts[b] for b, _ in rows], [rollout.groups[b][g].token_ids for b, g in rows], adv,
                     1.0 - keep.float().mean().item())


def list_policy_loss(model, batch: ListBatch, pad_id: int, kl_coef: float, old: torch.Tensor | None = None,
                     ref: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
    """J_GRPO of recllm_r1.txt §3.3 over whole lists, as a loss to minimise:

        L = 1/N sum_k 1/|o_k| sum_t [ -r_kt A_k + beta * k3(pi_theta, pi_ref)_kt ],  r_kt = pi_theta / pi_old

    (`unclipped_pg` + beta `k3_kl`, both aggregated per sequence). The trainer recomputes log pi_theta of
    every list token on prompt + list. old: [N, T] log pi_old, default the detached recomputation (the
    first update on a rollout is on-policy); ref: [N, T] log pi_ref, required when kl_coef > 0.
    Returns (loss, stats, the detached log-probs used as old).
    """
    if not batch.token_ids:
        return next(model.parameters()).sum() * 0.0, {"pg_tokens": 0.0}, torch.zeros(0)
    logprobs, mask = completion_logprobs(model, batch.prompts, batch.token_ids, pad_id)
    old_logprobs = logprobs.detach() if old is None else old
    loss, stats = get_loss("unclipped_pg")(logprobs, old_logprobs, batch.advantages.to(mask.device), mask)
    if kl_coef > 0:
        if ref is None:
            raise ValueError("kl_coef > 0 needs the reference policy's log-probs")
        kl, kl_stats = get_loss("k3_kl")(logprobs, ref, mask, agg="sequence")
        loss, stats = loss + kl_coef * kl, {**stats, **kl_stats}
    return loss, {**stats, "pg_tokens": float(mask.sum().item())}, old_logprobs


@torch.no_grad()
def reference_logprobs(reference, batch: ListBatch, pad_id: int) -> torch.Tensor | None:
    """log pi_ref [N, T] of the batch's list tokens (None without a reference model or lists)."""
    if reference is None or not batch.token_ids:
        return None
    return completion_logprobs(reference, batch.prompts, batch.token_ids, pad_id)[0]


@dataclass
class _ListRun:
    sampler: TrieSampler
    reference: torch.nn.Module | None


_RUNS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # rollout engine (one per train_rl call) -> _ListRun


def _list_run(engine, policy, cfg: RLConfig) -> _ListRun:
    """The run's sampler and frozen reference policy, made at its first list step (= RL start)."""
    if engine not in _RUNS:
        depth = policy.scheme.depth or max(len(p) for p in policy.item_ids.values())
        reference = None
        if cfg.kl_coef > 0:
            reference = copy.deepcopy(policy.model).eval().requires_grad_(False)
        _RUNS[engine] = _ListRun(TrieSampler(policy.model, policy.trie, depth, policy.tokenizer.pad_token_id),
                                 reference)
    return _RUNS[engine]


def list_step(policy, engine, batch: Sequence[Sample], cfg: RLConfig, optimizer, generator: torch.Generator | None,
              pad_id: int, following: Mapping[str, Sequence[str]] | None = None) -> dict:
    """One RL step with the list action (the list counterpart of `rl._step`). Returns the step's log record."""
    check_list_config(cfg)
    run = _list_run(engine, policy, cfg)
    model = policy.model
    prompt_ids = [policy.prompt_ids(s) for s in batch]
    started = time.perf_counter()
    model.eval()
    rollout = collect_list_rollout(run.sampler, prompt_ids, batch, cfg, generator, following)
    flat = flatten_kept(rollout, cfg)
    ref = reference_logprobs(run.reference, flat, pad_id)
    rollout_seconds = time.perf_counter() - started
    model.train()
    started = time.perf_counter()
    old, stats = None, {}
    for _ in range(cfg.updates_per_batch):
        loss, stats, used = list_policy_loss(model, flat, pad_id, cfg.kl_coef, old, ref)
        old = used if old is None else old
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
    tokens = sum(len(c.token_ids) for g in rollout.groups for c in g)
    return {**rollout.stats, **stats, "zero_variance_share": flat.zero_variance_share, "loss": float(loss.item()),
            "rollout_tokens_per_s": tokens / max(rollout_seconds, 1e-9),
            "train_tokens_per_s": tokens * cfg.updates_per_batch / max(time.perf_counter() - started, 1e-9)}
