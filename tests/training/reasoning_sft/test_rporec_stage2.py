"""RPORec stage II (training/trainers/rporec_stage2.py): the programmatic summary, negatives, the Rechead's re-scoring
of reasoning rollouts by hand, and a training step that moves the policy."""

from __future__ import annotations

import math
import random

import pytest
import torch

from tests.hash_encoder import HashEncoder
from tests.serving.bundles import write_rechead_bundle
from tests.training.reasoning_sft.rl_helpers import reasoning_policy, reasoning_rl_config
from training.bundle import read_manifest
from training.reasoning.rechead_recommender import load_rechead_recommender
from training.trainers.reasoning_rl import collect_reasoning_rollout, reasoner_for, reasoning_rl_loss
from training.trainers.rporec_stage2 import RecheadRewarder, sample_negatives, summarize_cot

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_summary_drops_repeated_clauses_in_order():
    assert summarize_cot("a , b . a , c") == "a. b. c"
    assert summarize_cot("Likes drama; likes DRAMA ;likes comedy") == "Likes drama. likes comedy"
    assert summarize_cot("") == ""


def test_negatives_are_distinct_and_never_the_target_or_history():
    rng = random.Random(0)
    drawn = sample_negatives(12, {0, 3, 5}, 6, rng)
    assert len(drawn) == len(set(drawn)) == 6 and not {0, 3, 5} & set(drawn)
    assert sorted(sample_negatives(4, {0, 1}, 10, rng)) == [2, 3]  # the catalog runs out


@pytest.fixture
def rewarder(tmp_path):
    root = write_rechead_bundle(tmp_path / "rechead", HashEncoder())
    rechead = load_rechead_recommender(root, read_manifest(root), "cpu", encoder=HashEncoder())
    return RecheadRewarder(rechead, negatives=5, seed=0, focus=0.2)


@pytest.mark.timeout(60)
def test_rescore_by_hand_and_the_focus_mask(tiny_kit, sft_split, policy_for, rewarder):
    samples = sft_split.valid[:2]
    cfg = reasoning_rl_config(reward="rporec", advantage="grpo", max_think_tokens=6, group_size=3)
    policy = reasoning_policy(tiny_kit, policy_for)
    reasoner = reasoner_for(policy, cfg)
    from training.rollout.sampling import TrieSampler

    sampler = TrieSampler(policy.model, reasoner.trie, reasoner.beam.depth, tiny_kit.tokenizer.pad_token_id)
    rollout = collect_reasoning_rollout(reasoner, sampler, samples, cfg, None, torch.Generator().manual_seed(0))
    assert (rollout.rewards == 0).all()  # left to the Rechead
    scored = rewarder.rescore(rollout, samples, reasoner)
    s = scored.stats
    assert s["r_fmt"] == s["r_clean"] == 1.0
    # r = r_fmt (= 1) times the sum of the six terms, equal alphas: the mean reward is the sum of the mean terms
    assert s["reward_mean"] == pytest.approx(sum(s[f"r_{t}"] for t in ("fmt", "clean", "ndcg", "sim", "comp", "ent")))
    assert 0.0 <= s["r_ndcg"] <= 1.0 and 0.0 <= s["r_comp"] <= 1.0 and s["r_ent"] >= 0.0
    assert scored.rewards.shape == (2, 3) and (scored.rewards >= 2.0).all()  # fmt + clean at least
    live = sum(sum(1 for a in actions if a) for actions in rollout.actions)
    kept = int(scored.focus.sum().item())
    assert math.ceil(0.2 * live) <= kept < live  # the top 20 % (ties kept), only action tokens
    for row, actions in enumerate(rollout.actions):
        dead = [t for t, a in enumerate(actions) if not a]
        assert all(scored.focus[row, t] == 0 for t in dead)


@pytest.mark.timeout(60)
def test_the_stage_two_loss_has_a_gradient_only_through_focused_tokens(tiny_kit, sft_split, policy_for, rewarder):
    samples = sft_split.valid[:2]
    cfg = reasoning_rl_config(reward="rporec", advantage="grpo", max_think_tokens=6, group_size=3, entropy_focus=0.2)
    policy = reasoning_policy(tiny_kit, policy_for)
    reasoner = reasoner_for(policy, cfg)
    from training.rollout.sampling import TrieSampler

    sampler = TrieSampler(policy.model, reasoner.trie, reasoner.beam.depth, tiny_kit.tokenizer.pad_token_id)
    rollout = rewarder.rescore(collect_reasoning_rollout(reasoner, sampler, samples, cfg, None,
                                                         torch.Generator().manual_seed(1)), samples, reasoner)
    varied = torch.tensor([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]])  # the second group carries no signal
    rollout = rollout.__class__(**{**rollout.__dict__, "rewards": varied})
    loss, stats = reasoning_rl_loss(policy.model, None, rollout, cfg, tiny_kit.tokenizer.pad_token_id)
    assert stats["zero_variance_share"] == 0.5
    assert stats["pg_tokens"] == pytest.approx(rollout.focus[:3].sum().item())
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.model.parameters())


def test_stage_two_without_a_rechead_bundle_is_refused_with_a_reason():
    from training.trainers.reasoning_rl import build_rewarder

    assert build_rewarder(reasoning_rl_config()) is None  # the prefix reward needs no Rechead
    with pytest.raises(ValueError, match="rl.rechead_bundle"):
        build_rewarder(reasoning_rl_config(reward="rporec"))
