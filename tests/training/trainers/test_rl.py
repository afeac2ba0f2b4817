"""The RL loop on a planted pattern (item i is followed by item i + 1): rewards go up, every part runs."""

from __future__ import annotations

import pytest
import torch

from training.config import PolicyConfig, RLConfig
from training.data.types import Sample
from training.identifiers.base import build_scheme
from training.models.policy import build_policy
from training.models.policy_recommender import PolicyRecommender
from training.rollout.scoring import completion_logprobs
from training.tokenization.builder import build_tokenizer, collect_vocabulary
from training.trainers.rl import train_rl

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = PolicyConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64)


def _policy(catalog, scheme_name: str, **options) -> PolicyRecommender:
    import numpy as np

    embeddings = np.random.default_rng(0).normal(size=(len(catalog), 8)).astype("float32")
    scheme = build_scheme(scheme_name, catalog, embeddings if scheme_name == "sid" else None, **options)
    tokenizer = build_tokenizer(collect_vocabulary(catalog, [], scheme.new_tokens()))
    return PolicyRecommender(build_policy(SMALL, tokenizer, seed=0), tokenizer, scheme, catalog, beam_width=5)


def _samples(n_items: int = 12) -> list[Sample]:
    return [Sample(f"u{i}:1", f"u{i}", (str(i),), str(i % n_items + 1)) for i in range(1, n_items + 1)]


def _target_prob(policy, samples) -> float:
    """Mean P(target | prompt) under the policy: the expected hit reward of one sample."""
    with torch.no_grad():
        lp, mask = completion_logprobs(policy.model, [policy.prompt_ids(s) for s in samples],
                                       [policy.item_ids[s.target] for s in samples], policy.tokenizer.pad_token_id)
    return (lp * mask).sum(dim=1).exp().mean().item()


def _cfg(**kw) -> RLConfig:
    base = dict(steps=25, prompts_per_step=6, group_size=8, lr=2e-2, eval_every=100, reward="hit",
                inject_target=True, valid_samples=12)
    return RLConfig(**{**base, **kw})


@pytest.mark.parametrize("parts", [
    {},                                                                   # GRPO + clipped PG
    {"advantage": "rloo"},
    {"oversample": 16, "kl_cov_ratio": 0.1, "simpo_weight": 0.5, "inject_target": False, "temperature": 1.5},
    {"control": True},                                                    # sft_continued
])
def test_rl_raises_the_target_probability_of_a_planted_pattern(tiny_catalog, tmp_path, parts):
    policy = _policy(tiny_catalog, "atomic")
    samples = _samples()
    before = _target_prob(policy, samples)
    weights = {k: v.clone() for k, v in policy.model.state_dict().items()}
    summary = train_rl(policy, samples, samples, _cfg(**parts, eval_every=1000, patience=1000), tmp_path)
    assert any(not torch.equal(weights[k], v) for k, v in policy.model.state_dict().items())
    assert summary["steps_run"] == 25 and summary["best_step"] == 25  # validated once, at the end: it improved
    assert _target_prob(policy, samples) > before + 0.05


def test_ce_weight_adds_the_target_cross_entropy_to_the_rl_loss(tiny_catalog, tmp_path):
    """Near-greedy pairs are identical, so every group is zero-variance and dropped (no PG signal): only the
    CE anchor can move the policy."""
    samples = _samples()
    flat = dict(temperature=0.01, group_size=2, inject_target=False, eval_every=1000, patience=1000, steps=10)
    without, anchored = _policy(tiny_catalog, "atomic"), _policy(tiny_catalog, "atomic")
    before = _target_prob(without, samples)
    train_rl(without, samples, samples, _cfg(**flat), tmp_path / "a")
    train_rl(anchored, samples, samples, _cfg(**flat, ce_weight=1.0), tmp_path / "b")
    assert _target_prob(without, samples) == pytest.approx(before, abs=1e-6)
    assert _target_prob(anchored, samples) > before + 0.05


def test_best_validation_weights_are_kept(tiny_catalog, tmp_path):
    policy = _policy(tiny_catalog, "atomic")
    samples = _samples()
    summary = train_rl(policy, samples, samples, _cfg(lr=1e-9, steps=4, eval_every=2, patience=1), tmp_path)
    # a learning rate of 1e-9 cannot beat the start: the start weights are restored, one bad eval stops the run
    assert summary["best_step"] == 0 and summary["steps_run"] == 2


def test_srpo_with_prefix_reward_and_certainty_mask_on_sids(tiny_catalog, tmp_path):
    policy = _policy(tiny_catalog, "sid", n_levels=2, n_codes=3, seed=0)
    samples = _samples()
    before = _target_prob(policy, samples)
    cfg = _cfg(reward="prefix", advantage="srpo", pass_k=2, certainty_d=0.6, temperature=0.5, eval_every=1000,
               patience=1000)
    train_rl(policy, samples, samples, cfg, tmp_path, num_levels=2)
    assert _target_prob(policy, samples) > before
    log = (tmp_path / "rl_log.jsonl").read_text().splitlines()
    assert len(log) == cfg.steps + 1 and '"invalid_rate": 0.0' in log[1]


def test_empty_prompts_are_refused(tiny_catalog, tmp_path):
    with pytest.raises(ValueError, match="nothing to train on"):
        train_rl(_policy(tiny_catalog, "atomic"), [], _samples(), _cfg(), tmp_path)


def test_later_updates_on_one_rollout_are_off_policy(tiny_catalog):
    """With updates_per_batch > 1 the first update's log-probs are the old policy: ratios leave 1 after a step."""
    import random

    from training.rollout.backend import BatchedTrieEngine
    from training.trainers.rl_rollout import collect_rollout
    from training.trainers.rl_update import policy_gradient_loss

    policy = _policy(tiny_catalog, "atomic")
    samples = _samples()
    cfg = _cfg(updates_per_batch=2)
    engine = BatchedTrieEngine(policy.model, policy.trie, 1, policy.tokenizer.pad_token_id)
    rollout = collect_rollout(engine, policy.trie, [policy.prompt_ids(s) for s in samples], samples, cfg,
                              policy.item_ids, None, random.Random(0), torch.Generator().manual_seed(0))
    optimizer = torch.optim.SGD(policy.model.parameters(), lr=1.0)
    loss, first, old = policy_gradient_loss(policy.model, rollout, cfg, policy.tokenizer.pad_token_id)
    assert first["approx_kl"] == 0.0  # the first update is on-policy
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    _, fresh, _ = policy_gradient_loss(policy.model, rollout, cfg, policy.tokenizer.pad_token_id)
    _, second, _ = policy_gradient_loss(policy.model, rollout, cfg, policy.tokenizer.pad_token_id, old)
    assert fresh["approx_kl"] == 0.0 and second["approx_kl"] > 0.0


@pytest.mark.timeout(60)
def test_simpo_loss_scores_targets_and_wrong_items_as_two_separate_calls_would(tiny_catalog):
    """simpo_loss scores both sides in one call; the loss must equal scoring each side on its own."""
    from training.algorithms.losses import get_loss
    from training.trainers.rl_rollout import StepRollout, path_completion
    from training.trainers.rl_update import simpo_loss, token_weights

    policy = _policy(tiny_catalog, "sid", n_levels=2, n_codes=4)
    trie, paths, pad = policy.trie, policy.item_ids, policy.tokenizer.pad_token_id
    samples = _samples()[:3]
    wrong = [["5", "6"], ["7"], ["2", "9", "11"]]
    groups = [[path_completion(trie, item, paths[item]) for item in items] for items in wrong]
    rollout = StepRollout([policy.prompt_ids(s) for s in samples], groups, torch.zeros(3, 3),
                          torch.zeros(3, 3, dtype=torch.bool), [s.target for s in samples], {})
    cfg = _cfg(simpo_weight=1.0, certainty_d=0.6)
    loss, stats = simpo_loss(policy.model, rollout, cfg, pad, trie, paths)

    pairs = [(b, paths[samples[b].target], c) for b, group in enumerate(groups) for c in group]
    prompts = [rollout.prompts[b] for b, _, _ in pairs]
    chosen, chosen_mask = completion_logprobs(policy.model, prompts, [p for _, p, _ in pairs], pad)
    rejected, rejected_mask = completion_logprobs(policy.model, prompts, [c.token_ids for _, _, c in pairs], pad)
    counts = [[len(trie.allowed_next(tuple(p[:j]))) for j in range(len(p))] for _, p, _ in pairs]
    expected, _ = get_loss("simpo")(
        chosen, token_weights(torch.tensor(counts), chosen_mask, cfg),
        rejected, token_weights(torch.tensor([c.n_children for _, _, c in pairs]), rejected_mask, cfg),
        beta=cfg.simpo_beta, gamma=cfg.simpo_gamma_ratio * cfg.simpo_beta)
    assert stats["n_pairs"] == 6.0
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-4)
