"""RL loop for direct mode (DESIGN.md §5): rollout -> reward -> advantage -> loss -> step -> log -> eval.

One engine, parts picked by name in `RLConfig` (recipes in training/configs/). The
`control=True` setting is the `sft_continued` row: the same prompts, steps and
learning rate, trained with cross-entropy on the target instead of rewards.
Keeps the best-validation weights (NDCG@10 every `eval_every` steps, early stop).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from training.config import RLConfig
from training.data.types import Sample
from training.rollout.engines import build_rollout_engine
from training.trainers.rl_list import following_items, list_step
from training.trainers.rl_rollout import collect_rollout
from training.trainers.rl_update import continued_sft_loss, policy_gradient_loss, simpo_loss
from training.trainers.run_files import append_jsonl, write_jsonl
from training.trainers.sft import validate
from training.trainers.weights import BestWeights


def train_rl(policy, prompts: Sequence[Sample], valid: Sequence[Sample], cfg: RLConfig, run_dir: Path,
             num_levels: int | None = None) -> dict:
    """Train `policy` (a PolicyRecommender) in place; leaves the best-validation weights. Returns a summary."""
    if not prompts or not valid:
        raise ValueError(f"nothing to train on: {len(prompts)} RL prompts, {len(valid)} validation samples")
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    model, pad_id = policy.model, policy.tokenizer.pad_token_id
    depth = policy.scheme.depth or max(len(p) for p in policy.item_ids.values())
    engine = build_rollout_engine(cfg.backend, model, policy.trie, depth, pad_id, policy.tokenizer.eos_token_id,
                                  policy.generator.beam_width, run_dir, cfg.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng, generator = random.Random(cfg.seed), torch.Generator().manual_seed(cfg.seed)
    best = BestWeights(model, validate(policy, valid))
    tqdm.write(f"rl start: valid NDCG@10 {best.metric:.4f}")
    log = [{"step": 0, "valid_ndcg@10": best.metric}]
    log_path = run_dir / "rl_log.jsonl"
    write_jsonl(log_path, log)
    batches = _cycle(list(prompts), cfg.prompts_per_step, rng)
    following = following_items(prompts, cfg.list_length) if cfg.action == "list" else None
    for step in tqdm(range(1, cfg.steps + 1), desc=f"rl {'control' if cfg.control else cfg.recipe}"):
        record = _step(policy, engine, next(batches), cfg, optimizer, rng, generator, num_levels, pad_id, following)
        record["step"] = step
        if step % cfg.eval_every == 0 or step == cfg.steps:
            record["valid_ndcg@10"] = validate(policy, valid)
            best.offer(record["valid_ndcg@10"], step)
            tqdm.write(f"step {step}: valid NDCG@10 {record['valid_ndcg@10']:.4f} reward {record['reward_mean']:.4f}")
        log.append(record)
        append_jsonl(log_path, record)
        if best.worse >= cfg.patience:
            break
    best.restore()
    model.eval()
    return {"best_step": best.step, "best_valid_ndcg@10": best.metric,
            "start_valid_ndcg@10": log[0]["valid_ndcg@10"], "steps_run": log[-1]["step"]}


def _step(policy, engine, batch, cfg: RLConfig, optimizer, rng, generator, num_levels, pad_id,
          following=None) -> dict:
    if cfg.action == "list":  # RecLLM-R1: the action is a list of items (rl_list.py)
        return list_step(policy, engine, batch, cfg, optimizer, generator, pad_id, following)
    model = policy.model
    prompt_ids = [policy.prompt_ids(s) for s in batch]
    started = time.perf_counter()
    model.eval()
    rollout = collect_rollout(engine, policy.trie, prompt_ids, batch, cfg, policy.item_ids, num_levels, rng, generator)
    rollout_seconds = time.perf_counter() - started
    model.train()
    started = time.perf_counter()
    stats: dict[str, float] = {}
    old = None  # the rollout policy's log-probs, kept from the first update for the later ones
    for _ in range(cfg.updates_per_batch):
        if cfg.control:
            loss = continued_sft_loss(model, prompt_ids, [policy.item_ids[s.target] for s in batch], pad_id)
        else:
            loss, stats, used = policy_gradient_loss(model, rollout, cfg, pad_id, old)
            old = used if old is None else old
            if cfg.simpo_weight > 0:
                extra, simpo_stats = simpo_loss(model, rollout, cfg, pad_id, policy.trie, policy.item_ids)
                loss = loss + cfg.simpo_weight * extra
                stats.update({f"simpo_{k}": v for k, v in simpo_stats.items()})
            if cfg.ce_weight > 0:  # an SFT anchor: is RL worth anything on top of the control's signal?
                ce = continued_sft_loss(model, prompt_ids, [policy.item_ids[s.target] for s in batch], pad_id)
                loss = loss + cfg.ce_weight * ce
                stats["ce_loss"] = float(ce.item())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
    engine.sync_weights(model.state_dict())
    tokens = sum(len(c.token_ids) for g in rollout.groups for c in g)
    invalid = sum(c.item not in policy.trie for g in rollout.groups for c in g) / max(1, rollout.hits.numel())
    return {**rollout.stats, **stats, "loss": float(loss.item()), "invalid_rate": invalid,
            "rollout_tokens_per_s": tokens / max(rollout_seconds, 1e-9),
            "train_tokens_per_s": tokens * cfg.updates_per_batch / max(time.perf_counter() - started, 1e-9)}


def _cycle(items: list[Sample], size: int, rng: random.Random) -> Iterator[list[Sample]]:
    """Endless shuffled batches of `size` (a new shuffle every pass)."""
    while True:
        order = items[:]
        rng.shuffle(order)
        for start in range(0, len(order) - size + 1 if len(order) >= size else 1, size):
            yield order[start:start + size]

