"""Reasoning SFT wired into config and pipeline: settings, cache keys, manifest entry, decode settings."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest

from tests.movielens import tiny_cli_overrides, write_movielens
from training.bundle import BundleError, settings_hash
from training.config import ConfigError, ReasoningDecodeConfig, ReasoningSFTConfig, load_config
from training.inference import load_recommender, reasoning_decode_settings, reasoning_entry
from training.pipeline import policy_settings, reasoning_generation, reasoning_sft_settings
from training.prompts import REASONING_LAYOUT_VERSION
from training.reasoning_sft.recommender import ReasoningDecodeSettings
from training.reasoning_sft.train import ReasoningSFTSettings

SPLIT = SimpleNamespace(content_hash="abc123")


@pytest.mark.timeout(10)
def test_default_config_keeps_the_policy_settings_and_cache_key_it_had_before_reasoning():
    cfg = load_config()
    settings = policy_settings(cfg, SPLIT)
    before = {"data": cfg.data.model_dump(mode="json", exclude={"data_dir", "path"}),
              "identifiers": cfg.identifiers.model_dump(mode="json"), "policy": cfg.policy.model_dump(mode="json"),
              "sft": cfg.sft.model_dump(mode="json"), "split_sha256": "abc123"}
    assert settings == before and "reasoning" not in settings
    assert settings_hash(settings) == settings_hash(before)
    assert policy_settings(load_config("atomic"), SPLIT).keys() == before.keys()


@pytest.mark.timeout(10)
def test_enabled_reasoning_joins_the_settings_and_changes_the_cache_key():
    plain, reasoning = load_config(), load_config(None, ["reasoning.enabled=true", "reasoning.epochs=2"])
    settings = policy_settings(reasoning, SPLIT)
    assert settings["reasoning"]["epochs"] == 2 and settings["reasoning"]["decode"]["n_cots"] == 1
    assert settings_hash(settings) != settings_hash(policy_settings(plain, SPLIT))


@pytest.mark.timeout(10)
def test_the_reasoning_section_mirrors_the_trainer_and_decoder_settings():
    config = ReasoningSFTConfig()
    for field in dataclasses.fields(ReasoningSFTSettings):
        assert getattr(config, field.name) == field.default, field.name
    decode = ReasoningDecodeConfig()
    for name in ReasoningDecodeConfig.model_fields:
        assert getattr(decode, name) == getattr(ReasoningDecodeSettings(), name), name
    cfg = load_config(None, ["reasoning.enabled=true", "reasoning.gamma=2.0", "reasoning.think_in_loss=true"])
    assert reasoning_sft_settings(cfg) == ReasoningSFTSettings(gamma=2.0, think_in_loss=True)


@pytest.mark.timeout(10)
def test_config_refuses_several_greedy_cots_and_typos():
    with pytest.raises(ConfigError, match="n_cots > 1 needs temperature > 0"):
        load_config(None, ["reasoning.decode.n_cots=4"])
    sampled = load_config(None, ["reasoning.decode.n_cots=4", "reasoning.decode.temperature=0.7"])
    assert sampled.reasoning.decode.n_cots == 4
    with pytest.raises(ConfigError, match="reasoning.epoch"):
        load_config(None, ["reasoning.epoch=2"])


def _manifest(**reasoning) -> dict:
    cfg = load_config(None, ["reasoning.enabled=true", "reasoning.decode.max_think_tokens=40",
                             "reasoning.max_tokens=200"])
    entry = {**reasoning_generation(cfg), **reasoning}
    return {"kind": "policy", "name": "r", "generation": {"beam_width": 7, "prompt_layout": 1, "reasoning": entry}}


@pytest.mark.timeout(10)
def test_decode_settings_come_from_the_manifest_and_pass_k_switches_to_sampling():
    manifest = _manifest()
    assert manifest["generation"]["reasoning"]["layout"] == REASONING_LAYOUT_VERSION
    assert reasoning_decode_settings(manifest) == ReasoningDecodeSettings(max_think_tokens=40, max_total_tokens=200,
                                                                          beam_width=7)
    assert reasoning_decode_settings(manifest, pass_k=4) == ReasoningDecodeSettings.pass_at(
        4, max_think_tokens=40, max_total_tokens=200, beam_width=7)


@pytest.mark.timeout(10)
def test_reasoning_mode_is_refused_for_bundles_not_trained_for_it(tmp_path):
    assert reasoning_entry(tmp_path, _manifest())["max_think_tokens"] == 40
    with pytest.raises(BundleError, match="not trained for reasoning mode"):
        reasoning_entry(tmp_path, {"kind": "policy", "generation": {"prompt_layout": 1}})
    with pytest.raises(BundleError, match="'baseline' bundle has no reasoning mode"):
        reasoning_entry(tmp_path, {"kind": "baseline", "generation": {}})
    with pytest.raises(BundleError, match="reasoning layout 99.*retrain"):
        reasoning_entry(tmp_path, _manifest(layout=99))
    with pytest.raises(ValueError, match="unknown mode"):
        load_recommender(tmp_path, mode="thinking")
    with pytest.raises(ValueError, match="pass_k applies to reasoning mode only"):
        load_recommender(tmp_path, pass_k=3)


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_direct_validation_and_a_capped_corpus(tmp_path, one_torch_thread):
    """reasoning.valid_mode=direct picks the epoch by the trie beam; max_reasoning_samples caps the corpus."""
    from training.pipeline import prepare_data, train_policy_bundle

    write_movielens(tmp_path / "ml")
    cfg = load_config(None, [*tiny_cli_overrides(tmp_path), "reasoning.enabled=true", "reasoning.epochs=1",
                             "reasoning.valid_mode=direct", "reasoning.max_reasoning_samples=24"])
    catalog, split = prepare_data(cfg)
    bundle, written = train_policy_bundle(cfg, catalog, split)
    manifest = json.loads((bundle / "manifest.json").read_text())
    training = manifest["model"]["training"]
    assert written and training["valid_mode"] == "direct" and training["n_reasoning_records"] == 24
    assert training["n_reasoning_examples"] == 24 and training["best_epoch"] == 1
    assert manifest["source"]["settings"]["reasoning"]["max_reasoning_samples"] == 24
    log = (tmp_path / "runs" / "sft" / "train" / "reasoning_log.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in log] == [1]
    assert train_policy_bundle(cfg, catalog, split) == (bundle, False)
