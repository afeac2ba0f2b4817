"""Update side of the RL step: advantages -> token weights -> registered losses (no math of its own).

Every number comes from `training/algorithms` (advantages, losses, masks); this module
only lines the rollout up as tensors: completions of kept groups flattened to [N, T].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from training.algorithms.advantages import get_advantage, zero_variance_groups
from training.algorithms.losses import get_loss
from training.algorithms.masks import certainty_mask, last_token_flags
from training.config import RLConfig
from training.identifiers.trie import ItemTrie
from training.padding import pad_rows
from training.rollout.scoring import completion_logprobs
from training.trainers.rl_rollout import StepRollout


def compute_advantages(rewards: torch.Tensor, cfg: RLConfig, targets_hit: torch.Tensor) -> torch.Tensor:
    """[B, G] rewards -> [B, G] advantages with the configured estimator."""
    estimator = get_advantage(cfg.advantage)
    if cfg.advantage == "srpo":
        return estimator(rewards, k=cfg.pass_k, success=targets_hit)
    return estimator(rewards)


def token_weights(n_children: torch.Tensor, mask: torch.Tensor, cfg: RLConfig) -> torch.Tensor:
    """Certainty-aware weights (riser.txt Eq. 6) when configured, else the plain token mask. [N, T]."""
    if cfg.certainty_d is None:
        return mask
    return certainty_mask(n_children, last_token_flags(mask), cfg.certainty_d, mask)


def policy_gradient_loss(model, rollout: StepRollout, cfg: RLConfig, pad_id: int,
                         old: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
    """Clipped PG (or RISER's KL-Cov objective) over the groups whose rewards vary.

    old: the per-token log-probs [N, T] of the rollout policy, returned (detached) by the first
    update on this rollout; later updates pass it back, so their ratios leave 1 and clipping and
    KL-Cov take effect. Returns (loss, stats, the detached log-probs this call used as `old`).
    """
    hits = rollout.hits
    advantages = compute_advantages(rollout.rewards, cfg, hits)
    keep = ~zero_variance_groups(rollout.rewards) if cfg.drop_zero_variance else torch.ones(len(hits), dtype=bool)
    stats = {"zero_variance_share": 1.0 - keep.float().mean().item()}
    rows = [(b, g) for b in range(len(rollout.groups)) if keep[b] for g in range(len(rollout.groups[b]))]
    if not rows:
        return _zero(model), {**stats, "pg_tokens": 0.0}, torch.zeros(0)
    prompts = [rollout.prompts[b] for b, _ in rows]
    completions = [rollout.groups[b][g] for b, g in rows]
    logprobs, mask = completion_logprobs(model, prompts, [c.token_ids for c in completions], pad_id)
    counts = pad_rows([c.n_children for c in completions], 0, side="right")[0].to(mask.device)
    weights = token_weights(counts[:, : mask.shape[1]], mask, cfg)
    adv = torch.stack([advantages[b, g] for b, g in rows]).to(mask.device)
    old_logprobs = logprobs.detach() if old is None else old
    if cfg.kl_cov_ratio > 0:
        successful = torch.tensor([bool(hits[b].any()) for b, _ in rows], device=mask.device)
        loss, loss_stats = get_loss("kl_cov")(logprobs, old_logprobs, adv, weights,
                                              candidates=(weights > 0) & successful[:, None],
                                              ratio=cfg.kl_cov_ratio, beta_kl=cfg.kl_cov_beta)
    else:
        loss, loss_stats = get_loss("clipped_pg")(logprobs, old_logprobs, adv, weights, cfg.clip_low,
                                                  cfg.clip_high, cfg.dual_clip)
    return loss, {**stats, **loss_stats, "pg_tokens": float(mask.sum().item())}, old_logprobs


def simpo_loss(model, rollout: StepRollout, cfg: RLConfig, pad_id: int, trie: ItemTrie,
               item_paths: Mapping[str, Sequence[int]]) -> tuple[torch.Tensor, dict[str, float]]:
    """SimPO on all-failed groups (riser.txt Eq. 3): the target against each distinct wrong item."""
    hits = rollout.hits
    pairs = []
    for b, group in enumerate(rollout.groups):
        target = rollout.targets[b]
        if hits[b].any() or target not in item_paths:
            continue
        wrong = {c.item: c for c in group}
        pairs += [(b, tuple(item_paths[target]), c) for c in wrong.values()]
    if not pairs:
        return _zero(model), {"n_pairs": 0.0}
    prompts, n = [rollout.prompts[b] for b, _, _ in pairs], len(pairs)
    # one call for targets and wrong items: each prompt's forward serves both (training/rollout/scoring.py)
    paths = [p for _, p, _ in pairs] + [c.token_ids for _, _, c in pairs]
    logprobs, mask = completion_logprobs(model, prompts * 2, paths, pad_id)
    chosen, rejected, chosen_mask, rejected_mask = logprobs[:n], logprobs[n:], mask[:n], mask[n:]
    width = mask.shape[1]
    chosen_counts = pad_rows([[len(trie.allowed_next(p[:j])) for j in range(len(p))] for _, p, _ in pairs], 0,
                             side="right", length=width)[0]
    rejected_counts = pad_rows([c.n_children for _, _, c in pairs], 0, side="right", length=width)[0]
    return get_loss("simpo")(chosen, token_weights(chosen_counts.to(chosen.device), chosen_mask, cfg),
                             rejected, token_weights(rejected_counts.to(rejected.device), rejected_mask, cfg),
                             beta=cfg.simpo_beta, gamma=cfg.simpo_gamma_ratio * cfg.simpo_beta)


def continued_sft_loss(model, prompts: list[list[int]], target_paths: list[Sequence[int]],
                       pad_id: int) -> torch.Tensor:
    """The `sft_continued` control: mean token cross-entropy of the target identifiers."""
    logprobs, mask = completion_logprobs(model, prompts, target_paths, pad_id)
    return -(logprobs * mask).sum() / mask.sum().clamp(min=1.0)


def _zero(model) -> torch.Tensor:
    return next(model.parameters()).sum() * 0.0
