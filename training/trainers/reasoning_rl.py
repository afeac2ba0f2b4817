"""RL for reasoning mode: GREAM's SRPO on chain-of-thought rollouts with a trie-constrained answer
(gream.txt §5, §6.1.3 "reasoning mode"; DESIGN.md §5).

Per step and prompt: G CoTs sampled from the policy (temperature, nucleus top-p; `</think>` forced after
`max_think_tokens`), then one answer per CoT drawn under the item trie at the same temperature after
`</think><answer>` (`TrieSampler`), so every answer is a real item. Reward: the SID prefix reward of the answer
(Eq. 14; `reward: hit` for identifiers without levels); advantage: the configured estimator (SRPO: the
bonus-calibrated pass@k advantage, Eq. 21, success = the exact target); groups whose rewards do not vary are
dropped (Eq. 22); loss: the clipped policy gradient over the policy's own actions plus kl_coef x the k3 KL to
the frozen start policy (Eq. 11-12). One update per rollout, so the ratios start at 1. No math lives here:
rewards, advantages and losses come from their registries; `reasoning_action_mask` says which tokens are actions.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from training.algorithms.advantages import get_advantage, zero_variance_groups
from training.algorithms.losses import get_loss
from training.config import RLConfig
from training.data.types import Sample
from training.padding import pad_rows
from training.reasoning_sft.decode import generate_thoughts
from training.reasoning_sft.recommender import ReasoningDecodeSettings, ReasoningRecommender
from training.rewards.group import RolloutGroup, score_group
from training.rollout.sampling import TrieSampler
from training.rollout.scoring import completion_logprobs
from training.trainers.run_files import append_jsonl, write_jsonl
from training.trainers.sft import validate
from training.trainers.weights import BestWeights


@dataclass(frozen=True)
class ReasoningRollout:
    """B prompts x G trajectories, prompt-major rows: prompts end in `<think>`; each completion is
    CoT + `</think>` + `<answer>` + the answer's identifier tokens, with its action mask; rewards, hits [B, G]."""

    prompts: list[list[int]]
    completions: list[list[int]]
    actions: list[list[float]]
    answers: list[str]
    rewards: torch.Tensor
    hits: torch.Tensor
    stats: dict[str, float]
    focus: torch.Tensor | None = None  # [B·G, T] extra token weights (RPORec's high-entropy tokens), None = all


def reasoning_action_mask(n_thought: int, closed: bool, n_answer: int) -> list[float]:
    """Which completion tokens the policy chose: [CoT..., </think>, <answer>, answer ids...] -> 1.0 / 0.0.

    The CoT tokens and the answer's identifier tokens are actions; `</think>` is one only when the policy wrote
    it itself (`closed`), not when the decoder forced it at the token budget; `<answer>` is always forced.
    """
    return [1.0] * n_thought + [1.0 if closed else 0.0, 0.0] + [1.0] * n_answer


def action_weights(actions: Sequence[Sequence[float]]) -> torch.Tensor:
    """Action masks (`reasoning_action_mask`, one per completion) right-padded with 0 into a float [N, T]."""
    return pad_rows(actions, 0, side="right")[0].float()


def reasoner_for(policy, cfg: RLConfig) -> ReasoningRecommender:
    """The two-stage decoder over `policy`'s weights with the RL think budget (greedy: the validation ranker)."""
    reasoning = policy.manifest["generation"].get("reasoning")
    if not reasoning:
        raise ValueError("rl.mode=reasoning needs a reasoning-SFT policy bundle (generation.reasoning in its "
                         "manifest): train one with `reasonrec train sft reasoning.enabled=true`")
    settings = ReasoningDecodeSettings(max_think_tokens=cfg.max_think_tokens,
                                       max_total_tokens=reasoning["max_total_tokens"],
                                       beam_width=policy.generator.beam_width)
    return ReasoningRecommender(policy.model, policy.tokenizer, policy.scheme, policy.catalog, settings,
                                name=f"{policy.manifest['name']} (reasoning)")


def collect_reasoning_rollout(reasoner: ReasoningRecommender, sampler: TrieSampler, batch: Sequence[Sample],
                              cfg: RLConfig, num_levels: int | None,
                              generator: torch.Generator | None = None) -> ReasoningRollout:
    """Sample G CoTs per sample, then one trie-constrained answer per CoT; score the groups."""
    prompts = [reasoner.prompt_ids(sample) for sample in batch]
    thoughts = generate_thoughts(reasoner.model, prompts, cfg.group_size, reasoner.think_end_id,
                                 reasoner.tokenizer.pad_token_id, reasoner.banned, cfg.max_think_tokens,
                                 cfg.temperature, cfg.top_p, generator)
    closing = [reasoner.think_end_id, reasoner.answer_id]
    heads = [prompt + cot + closing for prompt, cots in zip(prompts, thoughts, strict=True) for cot, _ in cots]
    drawn = [group[0] for group in sampler.sample(heads, 1, cfg.temperature, cfg.top_k, generator)]
    completions, actions, rewards, hits = [], [], [], []
    for b, (sample, cots) in enumerate(zip(batch, thoughts, strict=True)):
        answers = drawn[b * cfg.group_size:(b + 1) * cfg.group_size]
        for (cot, closed), answer in zip(cots, answers, strict=True):
            completions.append(cot + closing + list(answer.token_ids))
            actions.append(reasoning_action_mask(len(cot), closed, len(answer.token_ids)))
        target_path = tuple(reasoner.item_ids.get(sample.target, ()))
        group = RolloutGroup(tuple(a.item for a in answers), tuple(a.token_ids for a in answers),
                             tuple(a.logprob for a in answers), sample.target, target_path)
        rewards.append([0.0] * cfg.group_size if cfg.reward == "rporec"  # scored by the Rechead afterwards
                       else score_group(cfg.reward, group, num_levels=num_levels, beta=cfg.prefix_beta))
        hits.append([a.item == sample.target for a in answers])
    reward_t, hit_t = torch.tensor(rewards, dtype=torch.float32), torch.tensor(hits)
    closed_share = sum(c for cots in thoughts for _, c in cots) / max(1, hit_t.numel())
    stats = {"reward_mean": reward_t.mean().item(), "hit_rate": hit_t.float().mean().item(),
             "groups_with_hit": hit_t.any(dim=1).float().mean().item(), "closed_rate": closed_share,
             "think_tokens": sum(len(cot) for cots in thoughts for cot, _ in cots) / max(1, hit_t.numel()),
             "distinct_answers": len({a.item for a in drawn}) / max(1, len(drawn))}
    rows = [p for p in prompts for _ in range(cfg.group_size)]
    return ReasoningRollout(rows, completions, actions, [a.item for a in drawn], reward_t, hit_t, stats)


def reasoning_rl_loss(model, reference, rollout: ReasoningRollout, cfg: RLConfig,
                      pad_id: int) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped PG over the actions of the groups whose rewards vary, + kl_coef x k3 KL to `reference`."""
    estimator = get_advantage(cfg.advantage)
    extra = {"k": cfg.pass_k, "success": rollout.hits} if cfg.advantage == "srpo" else {}
    advantages = estimator(rollout.rewards, **extra)
    n_groups, group_size = rollout.rewards.shape
    keep = (~zero_variance_groups(rollout.rewards) if cfg.drop_zero_variance
            else torch.ones(n_groups, dtype=torch.bool))
    stats = {"zero_variance_share": 1.0 - keep.float().mean().item()}
    rows = [b * group_size + g for b in range(n_groups) if keep[b] for g in range(group_size)]
    if not rows:
        return next(model.parameters()).sum() * 0.0, {**stats, "pg_tokens": 0.0}
    prompts = [rollout.prompts[r] for r in rows]
    completions = [rollout.completions[r] for r in rows]
    logprobs, mask = completion_logprobs(model, prompts, completions, pad_id)
    weights = action_weights([rollout.actions[r] for r in rows]).to(mask.device)
    if rollout.focus is not None:
        weights = weights * rollout.focus[torch.tensor(rows), :weights.shape[1]].to(mask.device)
    adv = advantages.reshape(-1)[torch.tensor(rows)].to(mask.device)
    loss, pg_stats = get_loss("clipped_pg")(logprobs, logprobs.detach(), adv, weights, cfg.clip_low, cfg.clip_high,
                                            cfg.dual_clip)
    stats.update(pg_stats, pg_tokens=float(weights.sum().item()))
    if cfg.kl_coef > 0:
        with torch.no_grad():
            ref_logprobs, _ = completion_logprobs(reference, prompts, completions, pad_id)
        kl, kl_stats = get_loss("k3_kl")(logprobs, ref_logprobs, weights)
        loss = loss + cfg.kl_coef * kl
        stats.update(kl_stats)
    return loss, stats


def build_rewarder(cfg: RLConfig):
    """RPORec stage II (reward rporec): the frozen stage-I Rechead that re-scores the rollouts; else None."""
    if cfg.reward != "rporec":
        return None
    from training.trainers.rporec_stage2 import RecheadRewarder

    if not cfg.rechead_bundle:
        raise ValueError("reward rporec needs rl.rechead_bundle: the stage-I Rechead bundle")
    return RecheadRewarder.from_bundle(cfg.rechead_bundle, negatives=cfg.rporec_negatives, seed=cfg.seed,
                                       focus=cfg.entropy_focus)


def train_reasoning_rl(policy, prompts: Sequence[Sample], valid: Sequence[Sample], cfg: RLConfig, run_dir: Path,
                       num_levels: int | None = None) -> dict:
    """Train `policy` (a reasoning-SFT PolicyRecommender) in place; validation = NDCG@10 of one greedy CoT then
    the trie beam, every `eval_every` steps, best weights kept, early stop after `patience` worse evaluations."""
    if not prompts or not valid:
        raise ValueError(f"nothing to train on: {len(prompts)} RL prompts, {len(valid)} validation samples")
    if cfg.control or cfg.action != "item":
        raise ValueError("rl.mode=reasoning trains one answer per CoT with rewards: it has no sft_continued "
                         "control and no list action")
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    reasoner, model, pad_id = reasoner_for(policy, cfg), policy.model, policy.tokenizer.pad_token_id
    reference = copy.deepcopy(model).eval().requires_grad_(False) if cfg.kl_coef > 0 else None
    sampler = TrieSampler(model, reasoner.trie, reasoner.beam.depth, pad_id)
    rewarder = build_rewarder(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng, generator = random.Random(cfg.seed), torch.Generator().manual_seed(cfg.seed)
    model.eval()
    start = validate(reasoner, valid)
    best = BestWeights(model, start)
    tqdm.write(f"reasoning rl start: valid NDCG@10 {start:.4f} (greedy CoT of {cfg.max_think_tokens} tokens)")
    log_path, step = run_dir / "rl_log.jsonl", 0
    write_jsonl(log_path, [{"step": 0, "valid_ndcg@10": start}])
    order: list[Sample] = []
    for step in tqdm(range(1, cfg.steps + 1), desc=f"rl {cfg.recipe} (reasoning)"):
        if len(order) < cfg.prompts_per_step:
            order = list(prompts)
            rng.shuffle(order)
        batch, order = order[:cfg.prompts_per_step], order[cfg.prompts_per_step:]
        record = {"step": step, **_step(reasoner, sampler, reference, batch, cfg, optimizer, num_levels, generator,
                                        rewarder)}
        if step % cfg.eval_every == 0 or step == cfg.steps:
            model.eval()
            record["valid_ndcg@10"] = validate(reasoner, valid)
            best.offer(record["valid_ndcg@10"], step)
            tqdm.write(f"step {step}: valid NDCG@10 {record['valid_ndcg@10']:.4f} reward {record['reward_mean']:.4f}")
        append_jsonl(log_path, record)
        if best.worse >= cfg.patience:
            break
    best.restore()
    model.eval()
    return {"best_step": best.step, "best_valid_ndcg@10": best.metric, "start_valid_ndcg@10": start,
            "steps_run": step, "mode": "reasoning", "max_think_tokens": cfg.max_think_tokens}


def _step(reasoner: ReasoningRecommender, sampler: TrieSampler, reference, batch: Sequence[Sample], cfg: RLConfig,
          optimizer, num_levels: int | None, generator: torch.Generator, rewarder=None) -> dict[str, float]:
    model = reasoner.model
    started = time.perf_counter()
    model.eval()
    rollout = collect_reasoning_rollout(reasoner, sampler, batch, cfg, num_levels, generator)
    if rewarder is not None:
        rollout = rewarder.rescore(rollout, batch, reasoner)
    rollout_seconds = time.perf_counter() - started
    model.train()
    loss, stats = reasoning_rl_loss(model, reference, rollout, cfg, reasoner.tokenizer.pad_token_id)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    model.eval()
    return {**rollout.stats, **stats, "loss": float(loss.item()), "rollout_seconds": rollout_seconds,
            "step_seconds": time.perf_counter() - started}

