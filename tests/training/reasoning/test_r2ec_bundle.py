"""R²ec's training side: the backbone from an SFT policy bundle, and the settings that key its bundle."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.r2ec_kit import make_r2ec_kit
from training.bundle import write_bundle
from training.config import load_config
from training.pipeline import SplitMismatchError, policy_files
from training.prompts import PROMPT_LAYOUT_VERSION
from training.reasoning.r2ec_bundle import build_base, r2ec_bundle_dir, r2ec_settings


@pytest.fixture
def parent(one_torch_thread, tmp_path):
    """(kit, a policy bundle holding the kit's LM, tokenizer and identifiers on the kit's split)."""
    kit = make_r2ec_kit()
    root = tmp_path / "sft" / "bundle"
    write_bundle(root, policy_files(kit.catalog, kit.scheme, kit.tokenizer, kit.model.lm), "policy", "sft",
                 {"name": "tiny", "split_sha256": kit.split.content_hash}, {},
                 generation={"prompt_layout": PROMPT_LAYOUT_VERSION})
    return kit, root


def test_backbone_tokenizer_and_identifiers_come_from_the_parent_bundle(parent):
    kit, root = parent
    cfg = load_config("r2ec")
    lm, tokenizer, scheme, manifest = build_base(cfg, kit.catalog, kit.split, root)
    assert manifest["kind"] == "policy" and lm.training
    assert tokenizer.get_vocab() == kit.tokenizer.get_vocab() and scheme.mapping() == kit.scheme.mapping()
    for mine, theirs in zip(lm.state_dict().values(), kit.model.lm.state_dict().values(), strict=True):
        assert torch.equal(mine, theirs)
    settings = r2ec_settings(cfg, kit.split, manifest)
    assert settings["parent_bundle_version"] == manifest["bundle_version"] and "policy" not in settings
    assert "policy" in r2ec_settings(cfg, kit.split, None)


def test_parent_of_another_split_is_refused(parent):
    kit, root = parent
    other = dataclasses.replace(kit.split, content_hash="0" * 64)
    with pytest.raises(SplitMismatchError, match="trained on"):
        build_base(load_config("r2ec"), kit.catalog, other, root)


def test_bundle_dir_names_the_run_dataset_and_protocol():
    cfg = load_config("r2ec", ["r2ec.name=r2ec_no_reasoning", "runs_dir=/x"])
    assert str(r2ec_bundle_dir(cfg)) == "/x/r2ec_no_reasoning-ml-100k-temporal/bundle"


def test_lora_without_a_pretrained_base_is_refused(parent):
    kit, root = parent
    with pytest.raises(ValueError, match="policy.base_model"):
        build_base(load_config("r2ec", ["r2ec.lora_rank=4"]), kit.catalog, kit.split, root)


def test_settings_added_later_enter_the_key_only_when_changed(parent):
    kit, _ = parent
    plain = r2ec_settings(load_config("r2ec"), kit.split, None)["r2ec"]
    assert "lora_rank" not in plain and "prompt_style" not in plain and "group_size" in plain
    lora = r2ec_settings(load_config("r2ec", ["r2ec.lora_rank=4", "r2ec.prompt_style=text"]), kit.split, None)["r2ec"]
    assert lora["lora_rank"] == 4 and lora["prompt_style"] == "text" and "lora_alpha" not in lora
