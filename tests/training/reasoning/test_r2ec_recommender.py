"""The `r2ec` bundle: saved and loaded R²ec score alike; greedy reasoning then one rec-head ranking; refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.r2ec_kit import make_r2ec_kit
from training.bundle import BundleError, write_bundle
from training.config import R2ecConfig
from training.inference import load_recommender
from training.prompts import ANSWER, BOS, PROMPT_LAYOUT_VERSION, REASONING_LAYOUT_VERSION
from training.reasoning.r2ec_recommender import (
    R2ecRecommender,
    build_item_pieces,
    build_r2ec_model,
    rec_head_settings,
    save_r2ec_files,
)


@pytest.fixture
def kit(one_torch_thread):
    kit = make_r2ec_kit()
    kit.model.refresh_item_table()
    with torch.no_grad():  # a table that differs from a fresh refresh: the bundle must ship it, not recompute it
        kit.model.item_table.add_(0.01 * torch.randn_like(kit.model.item_table))
    return kit


def save_bundle(kit, root, reasoning=True, max_think_tokens=5):
    settings = rec_head_settings(R2ecConfig())

    def fill(tmp):
        kit.catalog.save(tmp / "catalog.json")
        save_r2ec_files(tmp, kit.model, kit.catalog, kit.scheme, settings)

    generation = {"prompt_layout": PROMPT_LAYOUT_VERSION, "max_history": 20,
                  "r2ec": {"layout": REASONING_LAYOUT_VERSION, "reasoning": reasoning,
                           "max_think_tokens": max_think_tokens}}
    write_bundle(root, fill, "r2ec", "r2ec_test", {"name": "tiny"}, {}, generation=generation)
    return root


@pytest.mark.parametrize("reasoning", [True, False])
def test_saved_and_loaded_r2ec_score_alike(kit, tmp_path, reasoning):
    original = R2ecRecommender(kit.model, kit.scheme, kit.catalog, reasoning=reasoning, max_think_tokens=5)
    loaded = load_recommender(save_bundle(kit, tmp_path / "bundle", reasoning), "cpu")
    assert isinstance(loaded, R2ecRecommender) and loaded.manifest["kind"] == "r2ec"
    assert torch.equal(loaded.model.item_table, kit.model.item_table)
    samples = kit.split.test[:6]
    scores = original.score_all(samples)
    assert scores.shape == (6, 12)  # [samples, catalog items]
    assert np.allclose(loaded.score_all(samples), scores, atol=1e-5)
    assert loaded.rank(samples, 5) == original.rank(samples, 5)


def test_scores_are_greedy_reasoning_then_one_rec_head_ranking(kit):
    rec = R2ecRecommender(kit.model, kit.scheme, kit.catalog, reasoning=True, max_think_tokens=4)
    samples = kit.split.test[:3]
    prompts = [rec.prompt_ids(s) for s in samples]
    rows, completions = rec.decode_reasoning(prompts)
    assert all(r[-1] == kit.model.think_id for r in rows)
    assert all(c[-2:] == [kit.model.think_end_id, kit.model.answer_id] and len(c) <= 6 for c in completions)
    expected = kit.model.score_prompts(prompts, reasoning=True, max_think_tokens=4)
    assert torch.allclose(rec.rank_step(rows, completions), expected, atol=1e-5)
    assert np.allclose(rec.score_all(samples), expected.numpy(), atol=1e-5)


def test_rank_excludes_seen_items_and_returns_distinct_items(kit):
    rec = R2ecRecommender(kit.model, kit.scheme, kit.catalog, max_think_tokens=3)
    sample = kit.split.test[0]
    seen = set(sample.history)
    ranked = rec.rank([sample], 12, exclude=[seen])[0]
    assert len(ranked) == len(set(ranked)) == 12 - len(seen) and not set(ranked) & seen


def test_identifier_item_prompts_lead_with_the_item_tokens(kit):
    pieces = build_item_pieces(kit.catalog, kit.scheme, "identifier_text")
    item = kit.catalog.item_ids[3]
    assert pieces[3][0] == BOS and pieces[3][-1] == ANSWER
    assert tuple(pieces[3][1:1 + len(kit.scheme.item_tokens(item))]) == kit.scheme.item_tokens(item)
    settings = {**rec_head_settings(R2ecConfig()), "item_prompt": "identifier_text"}
    model = build_r2ec_model(kit.model.lm, kit.tokenizer, kit.catalog, kit.scheme, settings)
    assert model.n_items == 12 and model.item_prompts[3] != kit.model.item_prompts[3]
    with pytest.raises(ValueError, match="unknown item prompt"):
        build_item_pieces(kit.catalog, kit.scheme, "titles")


def test_bundle_with_a_wrong_item_table_is_refused(kit, tmp_path):
    bundle = save_bundle(kit, tmp_path / "bundle")
    np.save(bundle / "item_embeddings.npy", np.zeros((3, 32), np.float32))
    with pytest.raises(BundleError, match="files changed"):
        load_recommender(bundle, "cpu")
    (bundle / "item_embeddings.npy").unlink()
    with pytest.raises(BundleError, match="lacks"):
        load_recommender(bundle, "cpu")
