"""Config: YAML recipes + `key.sub=value` overrides, typo-proof and frozen."""

from __future__ import annotations

import json
import subprocess
import sys

import pydantic
import pytest
import yaml

from training import config as config_module
from training.config import (
    ConfigError,
    RunConfig,
    config_differences,
    list_presets,
    load_config,
    parse_override,
    save_config,
)


def test_defaults_load():
    cfg = load_config()
    assert cfg == RunConfig()
    assert cfg.data.protocol == "temporal" and cfg.data.max_history == 20
    assert cfg.eval.filter_seen is False and cfg.eval.test_samples == 5000


def test_named_recipe_reads_training_configs():
    path = config_module.CONFIG_DIR / "default.yaml"
    assert path.is_file()
    assert load_config("default") == RunConfig.model_validate(yaml.safe_load(path.read_text()))
    assert load_config(path) == load_config("default")
    assert load_config("atomic").identifiers.scheme == "atomic"


def test_recipe_from_a_path(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nsft:\n  max_epochs: 2\n")
    cfg = load_config(path)
    assert cfg.name == "mine" and cfg.sft.max_epochs == 2 and cfg.sft.patience == 2


def test_missing_recipe():
    with pytest.raises(ConfigError, match="nope.*presets: atomic, default"):
        load_config("nope")


def test_yaml_syntax_errors_are_config_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sft:\n  max_epochs: [3\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config("default", ["sft.max_epochs=[3"])
    bad.write_text("- a list\n- not sections\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(bad)


def test_config_module_imports_no_torch_or_trainer():
    code = ("import sys, training.config; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith(('training.trainers', "
            "'training.models', 'training.baselines', 'transformers'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_presets_are_listed():
    assert {"default", "atomic"} <= set(list_presets())


def test_config_differences_names_dotted_keys():
    assert config_differences({"sft": {"lr": 1, "seed": 0}, "a": 1}, {"sft": {"lr": 2, "seed": 0}, "a": 1}) == \
        ["sft.lr: 1 -> 2"]


def test_overrides_parse_to_the_right_types():
    cfg = load_config("default", ["sft.max_epochs=3", "data.protocol=loo", "eval.filter_seen=true",
                                  "sft.lr=1e-4", "data.path=null", "identifiers.n_levels=3"])
    assert cfg.sft.max_epochs == 3 and isinstance(cfg.sft.max_epochs, int)
    assert cfg.data.protocol == "loo"
    assert cfg.eval.filter_seen is True
    assert cfg.sft.lr == pytest.approx(1e-4)
    assert cfg.data.path is None
    assert cfg.identifiers.n_levels == 3
    assert cfg.sft.patience == 2  # untouched keys keep the recipe's values


def test_parse_override():
    assert parse_override("a.b=3") == (["a", "b"], 3)
    assert parse_override(" eval.filter_seen = false") == (["eval", "filter_seen"], False)
    assert parse_override("data.path=/tmp/x=y") == (["data", "path"], "/tmp/x=y")  # split on the first '='


def test_unknown_key_is_an_error():
    with pytest.raises(ConfigError, match="max_epoch"):
        load_config("default", ["sft.max_epoch=3"])  # typo of max_epochs
    with pytest.raises(ConfigError, match="sfft"):
        load_config(None, ["sfft.max_epochs=3"])


def test_malformed_override():
    with pytest.raises(ValueError, match="key.sub=value"):
        load_config("default", ["sft.max_epochs"])


def test_override_into_a_value_is_refused():
    with pytest.raises(ValueError, match="not a section"):
        load_config("default", ["name.sub=1"])  # default.yaml sets name: sft
    with pytest.raises(ConfigError, match="name"):
        load_config(None, ["name.sub=1"])  # nothing there yet: caught by validation instead


def test_invalid_literal_and_bounds():
    with pytest.raises(ConfigError, match="protocol"):
        load_config("default", ["data.protocol=foo"])
    with pytest.raises(ConfigError, match="max_epochs"):
        load_config("default", ["sft.max_epochs=0"])


def test_config_is_frozen():
    cfg = load_config()
    with pytest.raises(pydantic.ValidationError):
        cfg.sft.max_epochs = 5  # type: ignore[misc]


def test_save_config_round_trip(tmp_path):
    cfg = load_config("default", ["data.protocol=loo"])
    path = tmp_path / "run" / "config.json"
    save_config(cfg, path)
    assert RunConfig.model_validate(json.loads(path.read_text())) == cfg
