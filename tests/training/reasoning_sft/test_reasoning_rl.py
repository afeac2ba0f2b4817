"""Reasoning-mode RL (training/trainers/reasoning_rl.py): the action mask, rollouts whose answers are real items,
the zero-variance rule, the KL term, and a planted pattern that the SRPO loop learns."""

from __future__ import annotations

import json

import pytest
import torch

from tests.training.reasoning_sft.rl_helpers import reasoning_policy, reasoning_rl_config
from training.data.types import Sample
from training.prompts import ANSWER, THINK_END
from training.rollout.sampling import TrieSampler
from training.rollout.scoring import completion_logprobs
from training.trainers.reasoning_rl import (
    collect_reasoning_rollout,
    reasoner_for,
    reasoning_action_mask,
    reasoning_rl_loss,
    train_reasoning_rl,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _rollout(kit, policy_for, samples, cfg):
    policy = reasoning_policy(kit, policy_for)
    reasoner = reasoner_for(policy, cfg)
    sampler = TrieSampler(policy.model, reasoner.trie, reasoner.beam.depth, kit.tokenizer.pad_token_id)
    rollout = collect_reasoning_rollout(reasoner, sampler, samples, cfg, kit.scheme.n_levels,
                                        torch.Generator().manual_seed(0))
    return policy, reasoner, rollout


def test_action_mask_by_hand():
    # 3 CoT tokens, </think> written by the policy, <answer> forced, 2 identifier tokens
    assert reasoning_action_mask(3, True, 2) == [1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    # </think> forced at the budget: not an action
    assert reasoning_action_mask(2, False, 3) == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    assert reasoning_action_mask(0, False, 1) == [0.0, 0.0, 1.0]


@pytest.mark.timeout(60)
def test_rollout_answers_are_real_items_after_the_cot(tiny_kit, sft_split, policy_for):
    samples = sft_split.valid[:3]
    cfg = reasoning_rl_config()
    _, reasoner, rollout = _rollout(tiny_kit, policy_for, samples, cfg)
    vocab = tiny_kit.tokenizer.get_vocab()
    closing = [vocab[THINK_END], vocab[ANSWER]]
    assert len(rollout.completions) == len(rollout.answers) == 3 * cfg.group_size
    assert rollout.rewards.shape == rollout.hits.shape == (3, cfg.group_size)
    for row, (completion, actions, item) in enumerate(zip(rollout.completions, rollout.actions, rollout.answers,
                                                           strict=True)):
        path = tiny_kit.item_ids[item]
        assert item in tiny_kit.catalog and completion[-len(path):] == path
        assert completion[-len(path) - 2:-len(path)] == closing
        assert len(actions) == len(completion) and len(completion) - len(path) - 2 <= cfg.max_think_tokens
        assert bool(rollout.hits[row // cfg.group_size, row % cfg.group_size]) == (
            item == samples[row // cfg.group_size].target)
    assert ((rollout.rewards >= 0) & (rollout.rewards <= 1)).all()
    assert rollout.prompts[0] == reasoner.prompt_ids(samples[0])


@pytest.mark.timeout(60)
def test_constant_reward_groups_are_dropped_and_kl_to_self_is_zero(tiny_kit, sft_split, policy_for):
    cfg = reasoning_rl_config(kl_coef=0.5)
    policy, _, rollout = _rollout(tiny_kit, policy_for, sft_split.valid[:3], cfg)
    pad = tiny_kit.tokenizer.pad_token_id
    flat = rollout.__class__(**{**rollout.__dict__, "rewards": torch.full_like(rollout.rewards, 0.5),
                                "hits": torch.zeros_like(rollout.hits)})
    loss, stats = reasoning_rl_loss(policy.model, policy.model, flat, cfg, pad)
    assert stats["pg_tokens"] == 0.0 and stats["zero_variance_share"] == 1.0 and loss.item() == 0.0
    varied = torch.zeros_like(rollout.rewards)
    varied[0, 0] = 1.0  # only the first group varies
    one = rollout.__class__(**{**rollout.__dict__, "rewards": varied, "hits": varied.bool()})
    loss, stats = reasoning_rl_loss(policy.model, policy.model, one, cfg, pad)
    assert stats["zero_variance_share"] == pytest.approx(2 / 3)
    assert stats["pg_tokens"] == sum(sum(a) for a in rollout.actions[:cfg.group_size])
    assert stats["kl"] == pytest.approx(0.0, abs=1e-6)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.model.parameters())


def _answer_prob(policy, reasoner, samples) -> float:
    """Mean P(target | prompt, empty CoT, </think><answer>): what the planted-pattern run should raise."""
    vocab = policy.tokenizer.get_vocab()
    prompts = [reasoner.prompt_ids(s) + [vocab[THINK_END], vocab[ANSWER]] for s in samples]
    with torch.no_grad():
        lp, mask = completion_logprobs(policy.model, prompts, [reasoner.item_ids[s.target] for s in samples],
                                       policy.tokenizer.pad_token_id)
    return (lp * mask).sum(dim=1).exp().mean().item()


@pytest.mark.timeout(120)
def test_srpo_learns_a_planted_answer_and_keeps_the_best_weights(tiny_kit, policy_for, tmp_path):
    items = sorted(tiny_kit.catalog.item_ids, key=int)[:6]
    samples = [Sample(f"p{i}:1", f"p{i}", (item,), items[(i + 1) % len(items)]) for i, item in enumerate(items)]
    policy = reasoning_policy(tiny_kit, policy_for)
    # an empty CoT: the answer is the whole task, so 80 steps are enough (lr 2e-2 collapses to one answer)
    cfg = reasoning_rl_config(max_think_tokens=0, group_size=8, prompts_per_step=6, steps=80, lr=2e-3, eval_every=40,
               patience=1000, kl_coef=0.001)
    reasoner = reasoner_for(policy, cfg)
    before = _answer_prob(policy, reasoner, samples)
    summary = train_reasoning_rl(policy, samples, samples, cfg, tmp_path, num_levels=tiny_kit.scheme.n_levels)
    log = [json.loads(line) for line in (tmp_path / "rl_log.jsonl").read_text().splitlines()]
    assert summary["steps_run"] == 80 and summary["mode"] == "reasoning" and len(log) == 81
    assert summary["best_valid_ndcg@10"] >= log[0]["valid_ndcg@10"] + 0.15, summary
    assert _answer_prob(policy, reasoner, samples) > 2 * before
    first, last = (sum(r["reward_mean"] for r in part) / len(part) for part in (log[1:11], log[-10:]))
    assert last > first + 0.2, (first, last)


def test_a_direct_bundle_is_refused_with_a_reason(tiny_kit, policy_for):
    policy = reasoning_policy(tiny_kit, policy_for)
    policy.manifest = {"name": "direct", "generation": {}}
    with pytest.raises(ValueError, match="reasoning-SFT policy bundle"):
        reasoner_for(policy, reasoning_rl_config())
