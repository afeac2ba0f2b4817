"""One config system: frozen pydantic models loaded from YAML, `key.sub=value` overrides.

A typo in a key is an error (`extra="forbid"`); the resolved config is saved
next to every run's outputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from training.baselines.train_seq import SeqConfig
from training.models.policy import PolicyConfig
from training.trainers.sft import SFTConfig

CONFIG_DIR = Path(__file__).parent / "configs"


class DataConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    dataset: str = "ml-100k"
    format: Literal["ml100k_atomic", "movielens_local", "amazon2023"] = "ml100k_atomic"
    path: str | None = Field(None, description="folder of local files; None = fetch ML-100k")
    data_dir: str = "data"
    protocol: Literal["temporal", "loo"] = "temporal"
    max_history: int = Field(20, ge=1)
    k_core: int = Field(0, ge=0)


class IdentifierConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    scheme: Literal["sid", "atomic", "titles"] = "sid"
    n_levels: int | None = Field(None, ge=1, le=4, description="None = sized for the catalog")
    n_codes: int | None = Field(None, ge=2, le=256)
    balanced: bool = True
    interaction_weight: float = Field(0.5, ge=0.0, le=1.0,
                                      description="share of co-occurrence signal in SID embeddings; 0 = text only")
    seed: int = 0


class EvalConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    test_samples: int = Field(5000, ge=0, description="seeded subset size; 0 = all")
    seed: int = 0
    filter_seen: bool = False
    beam_width: int = Field(20, ge=1, le=100)
    batch_size: int = Field(64, ge=1)


class RunConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = "sft"
    runs_dir: str = "runs"
    data: DataConfig = DataConfig()
    identifiers: IdentifierConfig = IdentifierConfig()
    policy: PolicyConfig = PolicyConfig()
    sft: SFTConfig = SFTConfig()
    eval: EvalConfig = EvalConfig()
    baseline: SeqConfig = SeqConfig()


def parse_override(text: str) -> tuple[list[str], object]:
    """"a.b=3" -> (["a", "b"], 3); the value is parsed as YAML (numbers, bools, null)."""
    if "=" not in text:
        raise ValueError(f"override {text!r} is not of the form key.sub=value")
    key, raw = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(raw)


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {text!r}: {part!r} is not a section")
        node[path[-1]] = value
    return raw


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """YAML file (a name in training/configs/ or a path) + overrides -> validated RunConfig."""
    raw: dict = {}
    if path:
        candidate = Path(path)
        if not candidate.exists():
            candidate = CONFIG_DIR / f"{path}.yaml"
        if not candidate.exists():
            raise FileNotFoundError(f"config {path!r} not found (nor {candidate})")
        raw = yaml.safe_load(candidate.read_text()) or {}
    return RunConfig.model_validate(apply_overrides(raw, overrides or []))


def save_config(cfg: BaseModel, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cfg.model_dump(mode="json"), indent=2))
