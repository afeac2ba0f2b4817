"""RecPO loop for R²ec (r2ec.txt §4.2, App. C-D): rollout -> reward -> advantage -> losses -> step -> refresh.

Per step and user: G reasonings sampled with temperature 1.5 and top-k 200 (§4.2.1); each closed with
`</think><answer>` and scored by the rec head over the cached item table; fused reward (Eq. 5) -> GRPO or RLOO
advantages (Eq. 2); the clipped policy gradient on the reasoning tokens of all G trajectories (Eq. 4, 6) plus the
clipped in-batch-softmax recommendation loss of the highest-advantage trajectory only (Eq. 7-8); no KL. One update
per rollout, so the ratios start at 1 (the authors' code). `reasoning=False` trains the same head on the history
alone with the in-batch contrastive loss (Eq. 1): the "w/o reasoning" control of §5.3.
The math lives in `training/algorithms/recpo.py`, `training/rewards/recpo.py` and the engine's registries.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from training.algorithms.advantages import get_advantage
from training.algorithms.losses import get_loss
from training.algorithms.recpo import (
    build_in_batch_candidates,
    compute_in_batch_contrastive_loss,
    compute_in_batch_logprob,
    compute_recpo_rec_loss,
)
from training.catalog import Catalog
from training.config import R2ecConfig
from training.data.types import Sample, UserProfile
from training.eval.metrics import ndcg_at_k
from training.models.lora import merged_copy, trainable_parameters
from training.models.r2ec import R2ec
from training.prompts import build_reasoning_prompt
from training.rewards import get_reward
from training.rollout.reasoning_sampling import sample_reasoning
from training.tokenization.builder import encode_pieces
from training.trainers.run_files import append_jsonl, write_jsonl
from training.trainers.weights import BestWeights


@dataclass(frozen=True)
class R2ecPrompt:
    """One user: prompt token ids (no `<think>`), target and history as catalog indices."""

    prompt_ids: tuple[int, ...]
    target: int
    history: tuple[int, ...]


@dataclass(frozen=True)
class R2ecRollout:
    """B users x G trajectories, prompt-major rows: prompts (with `<think>`), completions ending in `<answer>`,
    the number of policy actions in each completion, targets long [B], histories."""

    prompts: list[list[int]]
    completions: list[list[int]]
    n_actions: list[int]
    group_size: int
    targets: torch.Tensor
    histories: list[tuple[int, ...]]


def build_r2ec_prompts(samples: Sequence[Sample], catalog: Catalog, tokenizer, item_tokens,
                       profiles: Mapping[str, UserProfile] | None = None, **prompt_kwargs) -> list[R2ecPrompt]:
    """Samples -> prompts of `build_reasoning_prompt` (item_tokens: raw id -> pieces; prompt_kwargs: known,
    instruction, item_separator for a text LLM). Targets outside the catalog are an error."""
    vocab, memo = tokenizer.get_vocab(), {}
    out = []
    for s in samples:
        pieces = build_reasoning_prompt((profiles or {}).get(s.user_id), s.history, item_tokens, **prompt_kwargs)
        history = tuple(catalog.index_of(i) for i in s.history if i in catalog)
        ids = tuple(encode_pieces(tokenizer, pieces, vocab, memo))
        out.append(R2ecPrompt(ids, catalog.index_of(s.target), history))
    return out


def collect_rollout(model: R2ec, batch: Sequence[R2ecPrompt], cfg: R2ecConfig,
                    generator: torch.Generator | None = None) -> R2ecRollout:
    """G reasonings per user (temperature, top-k; §4.2.1), each closed with `</think><answer>`."""
    think = [[*p.prompt_ids, model.think_id] for p in batch]
    was_training = model.lm.training
    model.lm.eval()
    sampler = merged_copy(model.lm) if cfg.merge_lora_for_rollouts else model.lm
    thoughts = sample_reasoning(sampler, think, cfg.group_size, model.think_end_id, model.pad_id, model.banned_ids,
                                cfg.max_think_tokens, cfg.temperature, cfg.top_k, generator)
    model.lm.train(was_training)
    prompts, completions, n_actions = [], [], []
    for prompt, group in zip(think, thoughts, strict=True):
        for thought, closed in group:
            completion, actions = model.close_reasoning(thought, closed)
            prompts.append(prompt)
            completions.append(completion)
            n_actions.append(actions)
    targets = torch.tensor([p.target for p in batch], dtype=torch.long)
    return R2ecRollout(prompts, completions, n_actions, cfg.group_size, targets, [p.history for p in batch])


def compute_rollout_rewards(model: R2ec, rollout: R2ecRollout, user: torch.Tensor, cfg: R2ecConfig) -> torch.Tensor:
    """Fused reward (Eq. 5) of every trajectory from its user state [B*G, d] and the cached table -> [B, G]."""
    reward = get_reward("recpo")
    with torch.no_grad():
        scores = model.score_all(user.detach()).view(len(rollout.targets), rollout.group_size, -1).cpu()
    rows = [reward(scores[b], int(rollout.targets[b]), cfg.reward_ndcg_k, cfg.reward_softmax_weight,
                   rollout.histories[b] if cfg.reward_exclude_history else ())
            for b in range(len(rollout.targets))]
    return torch.tensor(rows, dtype=torch.float32)


def rec_action_logprobs(model: R2ec, user: torch.Tensor, targets: torch.Tensor, group_size: int
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """log π(v+|s) of every trajectory under the in-batch softmax (Eq. 7), item embeddings live (with gradient).

    user [B*G, d], targets [B] -> (logprobs [B, G], candidates [C], their embeddings [C, d]).
    """
    candidates, labels = build_in_batch_candidates(targets)
    items = model.encode_items(candidates)
    logprobs = compute_in_batch_logprob(model.similarity(user, items), labels.to(user.device).repeat_interleave(
        group_size))
    return logprobs.view(len(targets), group_size), candidates, items


def recpo_loss(model: R2ec, rollout: R2ecRollout, cfg: R2ecConfig) -> tuple[torch.Tensor, dict[str, float], tuple]:
    """Eq. 8: clipped PG on the reasoning tokens of all trajectories + rec_weight x the best trajectory's clipped
    rec loss. Returns (loss, stats, (candidates, their live embeddings)) for the table update."""
    fwd = model.forward_rollouts(rollout.prompts, rollout.completions, rollout.n_actions)
    rewards = compute_rollout_rewards(model, rollout, fwd.user, cfg)
    advantages = get_advantage(cfg.advantage)(rewards).to(fwd.user.device)
    pg, pg_stats = get_loss("clipped_pg")(fwd.logprobs, fwd.logprobs.detach(), advantages.reshape(-1), fwd.weights,
                                          cfg.clip_low, cfg.clip_high)
    rec_logprobs, candidates, items = rec_action_logprobs(model, fwd.user, rollout.targets, rollout.group_size)
    rec, rec_stats = compute_recpo_rec_loss(rec_logprobs, rec_logprobs.detach(), advantages, cfg.clip_low,
                                            cfg.clip_high)
    spread = rewards.std(dim=1).mean().item() if rollout.group_size > 1 else 0.0
    stats = {"reward_mean": rewards.mean().item(), "reward_std": spread, "pg_loss": pg.item(), "rec_loss": rec.item(),
             "pg_tokens": fwd.weights.sum().item(), "think_tokens": sum(rollout.n_actions) / len(rollout.n_actions),
             **{f"pg_{k}": v for k, v in pg_stats.items()}, **{f"rec_{k}": v for k, v in rec_stats.items()}}
    return pg + cfg.rec_weight * rec, stats, (candidates, items)


def contrastive_loss(model: R2ec, batch: Sequence[R2ecPrompt]) -> tuple[torch.Tensor, dict[str, float], tuple]:
    """The "w/o reasoning" control: prompt + `<answer>` -> h_u; in-batch contrastive loss (Eq. 1)."""
    prompts = [list(p.prompt_ids) for p in batch]
    user = model.forward_rollouts(prompts, [[model.answer_id]] * len(batch), [0] * len(batch), with_logprobs=False).user
    candidates, labels = build_in_batch_candidates(torch.tensor([p.target for p in batch], dtype=torch.long))
    items = model.encode_items(candidates)
    loss = compute_in_batch_contrastive_loss(model.similarity(user, items), labels.to(user.device))
    return loss, {"contrastive_loss": loss.item()}, (candidates, items)


def r2ec_step(model: R2ec, batch: Sequence[R2ecPrompt], cfg: R2ecConfig, optimizer, scheduler=None,
              generator: torch.Generator | None = None, rollout: R2ecRollout | None = None) -> dict[str, float]:
    """One RecPO step (or one control step when cfg.reasoning is False); `rollout` reuses a collected one."""
    started = time.perf_counter()
    if cfg.reasoning and rollout is None:
        rollout = collect_rollout(model, batch, cfg, generator)
    rollout_seconds = time.perf_counter() - started
    model.train()
    if cfg.reasoning:
        loss, stats, (candidates, items) = recpo_loss(model, rollout, cfg)
    else:
        loss, stats, (candidates, items) = contrastive_loss(model, batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(trainable_parameters(model), cfg.grad_clip)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    model.update_item_rows(candidates, items)  # RRec: the batch's item rows take their live embeddings
    return {**stats, "loss": loss.item(), "rollout_seconds": rollout_seconds,
            "step_seconds": time.perf_counter() - started}


def compute_valid_ndcg(model: R2ec, prompts: Sequence[R2ecPrompt], cfg: R2ecConfig, k: int = 10,
                       batch_size: int = 64) -> float:
    """Mean NDCG@k of greedy-reasoning rankings (or history-only ones for the control) over the full catalog."""
    values = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start:start + batch_size]
        scores = model.score_prompts([p.prompt_ids for p in chunk], cfg.reasoning, cfg.max_think_tokens)
        top = scores.topk(min(k, scores.shape[1]), dim=1).indices.tolist()
        values += [ndcg_at_k(row.index(p.target) if p.target in row else None, k) for row, p in zip(top, chunk,
                                                                                                     strict=True)]
    return sum(values) / len(values) if values else 0.0


def train_r2ec(model: R2ec, prompts: Sequence[R2ecPrompt], cfg: R2ecConfig, run_dir: Path | None = None,
               metric_fn: Callable[[R2ec], float] | None = None) -> dict:
    """Train `model` in place for cfg.steps; with metric_fn (higher is better, e.g. `compute_valid_ndcg` on a
    validation subset) every eval_every steps, early-stop after `patience` evaluations and keep the best weights.
    The item table is recomputed at the start, every refresh_every steps, before each evaluation and at the end."""
    if len(prompts) == 0:
        raise ValueError("nothing to train on: no R2ec prompts")
    torch.manual_seed(cfg.seed)
    device = model.item_table.device  # sampling draws on the model's device, so the generator lives there too
    rng, generator = random.Random(cfg.seed), torch.Generator(device=device).manual_seed(cfg.seed)
    optimizer = torch.optim.AdamW(trainable_parameters(model), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / (cfg.warmup_steps + 1)))
    model.refresh_item_table()
    log_path = None if run_dir is None else Path(run_dir) / "r2ec_log.jsonl"
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(log_path, [])
    best, step = BestWeights(model), 0
    batches = _cycle(list(prompts), cfg.prompts_per_step, rng)
    for step in range(1, cfg.steps + 1):
        record = {"step": step, **r2ec_step(model, next(batches), cfg, optimizer, scheduler, generator)}
        if step % cfg.refresh_every == 0:
            model.refresh_item_table()
        if metric_fn is not None and (step % cfg.eval_every == 0 or step == cfg.steps):
            model.refresh_item_table()
            record["valid_metric"] = float(metric_fn(model))
            best.offer(record["valid_metric"], step)
        if log_path is not None:
            append_jsonl(log_path, record)
        if best.worse >= cfg.patience:
            break
    best.restore()
    model.refresh_item_table()
    model.eval()
    return {"steps_run": step, "best_step": best.step, "best_valid_metric": best.metric}


def _cycle(items: list[R2ecPrompt], size: int, rng: random.Random) -> Iterator[list[R2ecPrompt]]:
    """Endless shuffled batches of `size` (a new shuffle every pass; one short batch if there are fewer items)."""
    while True:
        order = items[:]
        rng.shuffle(order)
        for start in range(0, len(order) - size + 1 if len(order) >= size else 1, size):
            yield order[start:start + size]

