"""Serve settings: the shipped default parses; mistakes are refused with a message naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from serving.settings import ExperimentSettings, ServeSettings
from training.config import ConfigError

pytestmark = pytest.mark.timeout(10)
DEFAULT = Path(__file__).resolve().parents[2] / "deploy" / "serve.yaml"


def _write(tmp_path, raw: dict) -> Path:
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _raw() -> dict:
    return yaml.safe_load(DEFAULT.read_text())


def test_the_shipped_config_parses(monkeypatch):
    monkeypatch.delenv("REASONREC_REDIS_URL", raising=False)
    s = ServeSettings.from_yaml(DEFAULT)
    assert (s.host, s.max_k, s.cold_start, s.reasoning_fallback) == ("127.0.0.1", 100, "popularity", "direct")
    assert s.bundle_path("sft") == Path("runs/sft/bundle")
    arms = s.experiments[0].arms
    assert [(a.mode, a.bundle, a.weight) for a in arms] == [("direct", "sft", 50), ("reasoning", "rechead", 50)]
    assert arms[1].engine == "native"


def test_env_and_overrides(monkeypatch):
    monkeypatch.setenv("REASONREC_REDIS_URL", "redis://10.0.0.1:7000/1")
    s = ServeSettings.from_yaml(DEFAULT, ["engine.max_batch_size=16", "max_k=20"])
    assert (s.redis_url, s.engine.max_batch_size, s.max_k) == ("redis://10.0.0.1:7000/1", 16, 20)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda r: r["experiments"][0]["arms"][1].update(name="direct"), "arm names must be unique; repeated: ['direct']"),
    (lambda r: [a.update(weight=0) for a in r["experiments"][0]["arms"]], "arm weights sum to 0"),
    (lambda r: r["experiments"][0]["arms"][0].update(bundle="sft2"), "bundle 'sft2' is not a key of bundles"),
    (lambda r: r["experiments"][0]["arms"][0].update(weight=-1), "greater than or equal to 0"),
    (lambda r: r.update(engine={"max_batch": 4}), "engine.max_batch: Extra inputs are not permitted"),
    (lambda r: r.update(cold_start="random"), "cold_start"),
    (lambda r: r.update(experiments=[]), "experiments"),
])
def test_mistakes_are_refused_clearly(tmp_path, edit, message):
    raw = _raw()
    edit(raw)
    with pytest.raises(ConfigError, match="serve.yaml: ") as err:
        ServeSettings.from_yaml(_write(tmp_path, raw))
    assert message in str(err.value)


def test_missing_or_non_mapping_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        ServeSettings.from_yaml(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        ServeSettings.from_yaml(tmp_path / "list.yaml")


def test_settings_are_frozen():
    exp = ExperimentSettings(name="e", salt="s", arms=[{"name": "a", "mode": "direct", "bundle": "b", "weight": 1}])
    with pytest.raises(ValueError):
        exp.salt = "t"
