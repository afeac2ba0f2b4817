import json

import pytest
import torch

from tests.r2ec_kit import make_r2ec_kit
from training.algorithms.advantages import get_advantage
from training.algorithms.recpo import compute_recpo_rec_loss, select_best_trajectories
from training.config import R2ecConfig, load_config
from training.trainers.r2ec import (
    build_r2ec_prompts,
    collect_rollout,
    compute_rollout_rewards,
    compute_valid_ndcg,
    contrastive_loss,
    r2ec_step,
    rec_action_logprobs,
    train_r2ec,
)

FAST = dict(prompts_per_step=4, group_size=4, max_think_tokens=6, lr=1e-3, warmup_steps=0)  # 1e-2 overshoots


@pytest.fixture
def kit(one_torch_thread):
    kit = make_r2ec_kit()
    kit.prompts = build_r2ec_prompts(kit.split.train, kit.catalog, kit.tokenizer, kit.scheme.item_tokens,
                                     kit.split.profiles)
    return kit


def rec_terms(model, rollout, cfg):
    """(rewards [B, G], rec-action log-probs [B, G]) of a fixed rollout under the current weights."""
    with torch.no_grad():
        fwd = model.forward_rollouts(rollout.prompts, rollout.completions, rollout.n_actions)
        logprobs = rec_action_logprobs(model, fwd.user, rollout.targets, rollout.group_size)[0]
        return compute_rollout_rewards(model, rollout, fwd.user, cfg), logprobs


def test_prompts_hold_catalog_indices(kit):
    first, sample = kit.prompts[0], kit.split.train[0]
    assert first.target == kit.catalog.index_of(sample.target)
    assert first.history == tuple(kit.catalog.index_of(i) for i in sample.history)
    assert first.prompt_ids[0] == kit.tokenizer.bos_token_id


def test_one_recpo_step_changes_the_rec_head_and_lowers_its_loss(kit):
    model, cfg = kit.model, R2ecConfig(**FAST)
    batch = kit.prompts[:4]
    model.refresh_item_table()
    table_before = model.item_table.clone()
    rollout = collect_rollout(model, batch, cfg, torch.Generator().manual_seed(0))
    assert len(rollout.completions) == 16 and all(c[-1] == model.answer_id for c in rollout.completions)
    rewards, old = rec_terms(model, rollout, cfg)
    advantages = get_advantage("grpo")(rewards)
    best = select_best_trajectories(advantages)
    assert bool((advantages[best] > 0).all())
    loss_before = compute_recpo_rec_loss(old, old, advantages)[0].item()
    weights_before = [p.detach().clone() for p in model.parameters()]

    record = r2ec_step(model, batch, cfg, torch.optim.AdamW(model.parameters(), lr=cfg.lr), rollout=rollout)
    assert record["rec_loss"] == pytest.approx(loss_before, abs=1e-4)  # the step saw the same rollout and weights
    assert record["reward_mean"] == pytest.approx(rewards.mean().item(), abs=1e-5)
    assert record["pg_tokens"] == sum(rollout.n_actions) > 0

    new = rec_terms(model, rollout, cfg)[1]
    assert compute_recpo_rec_loss(new, old, advantages)[0].item() < loss_before  # best trajectories: π(v+) up
    assert any(not torch.equal(a, b) for a, b in zip(weights_before, model.parameters(), strict=True))
    assert not torch.allclose(model.refresh_item_table(), table_before)  # the rec head moved


def test_no_reasoning_control_step_lowers_the_contrastive_loss(kit):
    model, cfg = kit.model, R2ecConfig(reasoning=False, **FAST)
    batch = kit.prompts[:6]
    with torch.no_grad():
        before = contrastive_loss(model, batch)[0].item()
    record = r2ec_step(model, batch, cfg, torch.optim.AdamW(model.parameters(), lr=cfg.lr))
    assert record["contrastive_loss"] == pytest.approx(before, abs=1e-5) and "pg_loss" not in record
    with torch.no_grad():
        assert contrastive_loss(model, batch)[0].item() < before


def test_train_loop_logs_refreshes_and_keeps_the_best(kit, tmp_path):
    cfg = R2ecConfig(steps=3, eval_every=1, refresh_every=1, **FAST)
    valid = kit.prompts[-6:]
    metrics = iter([0.3, 0.1, 0.2])
    summary = train_r2ec(kit.model, kit.prompts[:12], cfg, tmp_path, metric_fn=lambda m: next(metrics))
    assert summary == {"steps_run": 3, "best_step": 1, "best_valid_metric": 0.3}
    lines = [json.loads(x) for x in (tmp_path / "r2ec_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3] and all("rec_loss" in r for r in lines)
    assert kit.model.table_refreshes >= 1 + 3 + 3 + 1
    assert 0.0 <= compute_valid_ndcg(kit.model, valid, cfg) <= 1.0


def test_preset_has_the_paper_defaults():
    cfg = load_config("r2ec").r2ec
    assert (cfg.group_size, cfg.temperature, cfg.top_k, cfg.clip_low, cfg.clip_high) == (4, 1.5, 200, 0.2, 0.28)
    assert (cfg.reward_ndcg_k, cfg.reward_softmax_weight, cfg.advantage, cfg.reasoning) == (1000, 0.05, "grpo", True)
    assert load_config("r2ec", ["r2ec.reasoning=false"]).r2ec.reasoning is False
