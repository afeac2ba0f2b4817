"""The RL loop with rollouts on a real in-process vLLM engine (rl.backend=vllm): weights move, samples stay items."""

import json

import numpy as np
import pytest
import torch

from training.config import PolicyConfig, RLConfig
from training.data.types import Sample
from training.identifiers.base import build_scheme
from training.models.policy import build_policy
from training.models.policy_recommender import PolicyRecommender
from training.tokenization.builder import build_tokenizer, collect_vocabulary
from training.trainers.rl import train_rl

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]


def test_rl_steps_with_vllm_rollouts_change_the_weights_and_sample_only_items(tiny_catalog, tmp_path):
    embeddings = np.random.default_rng(0).normal(size=(len(tiny_catalog), 8)).astype("float32")
    scheme = build_scheme("sid", tiny_catalog, embeddings)
    tokenizer = build_tokenizer(collect_vocabulary(tiny_catalog, [], scheme.new_tokens()))
    model = build_policy(PolicyConfig(hidden_size=64, num_layers=1, num_heads=2, num_kv_heads=1,
                                      intermediate_size=128), tokenizer, seed=0)
    policy = PolicyRecommender(model, tokenizer, scheme, tiny_catalog, beam_width=5)
    samples = [Sample(f"u{i}:1", f"u{i}", (str(i),), str(i % 12 + 1)) for i in range(1, 13)]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = RLConfig(backend="vllm", steps=20, prompts_per_step=6, group_size=8, lr=2e-2, inject_target=True,
                   eval_every=1000, patience=1000, valid_samples=12)
    summary = train_rl(policy, samples, samples, cfg, tmp_path)
    assert summary["steps_run"] == 20 and summary["best_step"] == 20  # validated at the end: it improved
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    log = [json.loads(line) for line in (tmp_path / "rl_log.jsonl").read_text().splitlines()]
    assert [r["invalid_rate"] for r in log[1:]] == [0.0] * 20
    assert all(r["rollout_tokens_per_s"] > 0 for r in log[1:])
