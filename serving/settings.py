"""Serve settings: one frozen pydantic model loaded from YAML (`deploy/serve.yaml` documents every key).

`ServeSettings.from_yaml(path, overrides)` reads the file, applies `key.sub=value` overrides (as the
training CLI does), then `REASONREC_REDIS_URL` from the environment, and validates. A typo in a key is
an error. Relative paths (bundles, feedback log) are relative to the server's working directory.

An experiment splits users into arms by a salted hash (serving/experiments.py); each arm names a mode,
an engine and a bundle (a key of `bundles`), optionally pinned to a bundle_version.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from training.config import ConfigError, apply_overrides

REDIS_URL_ENV = "REASONREC_REDIS_URL"
# Arm and experiment names end up in metric labels and a header: short, plain.
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ArmSettings(Section):
    """One arm: mode, engine (direct mode: in-process beam search or vLLM), bundle key, traffic weight.

    bundle_version: when set, the server refuses a bundle whose manifest has another version."""

    name: Name
    mode: Literal["direct", "reasoning"]
    engine: Literal["native", "vllm"] = "native"
    bundle: str
    bundle_version: str | None = None
    weight: float = Field(ge=0)


class ExperimentSettings(Section):
    """An experiment: users split over `arms` by sha256(experiment:salt:user) into buckets.

    Arm order matters: arms own consecutive bucket ranges in this order (see ArmAssigner)."""

    name: Name
    salt: str = Field(min_length=1)
    arms: list[ArmSettings] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_arms(self) -> ExperimentSettings:
        repeated = sorted(name for name, n in Counter(a.name for a in self.arms).items() if n > 1)
        if repeated:
            raise ValueError(f"experiment {self.name!r}: arm names must be unique; repeated: {repeated}")
        if sum(a.weight for a in self.arms) <= 0:
            raise ValueError(f"experiment {self.name!r}: arm weights sum to 0; give at least one arm a weight > 0")
        return self

    def arm(self, name: str) -> ArmSettings | None:
        return next((a for a in self.arms if a.name == name), None)


class EngineSettings(Section):
    """Direct-mode engine: micro-batching of concurrent requests into one beam search (engine/batcher.py)."""

    max_batch_size: int = Field(8, ge=1)
    batch_wait_ms: float = Field(10.0, ge=0, description="longest wait of a batch for the requests it expects "
                                                        "(as many as were outstanding at once lately; a lone "
                                                        "client never waits)")
    max_queue: int = Field(64, ge=1, description="waiting requests beyond this are refused with 503")
    retry_after_s: float = Field(1.0, gt=0, description="Retry-After of an overload 503")
    device: Literal["auto", "cpu", "cuda"] = "cpu"
    beam_width: int | None = Field(None, ge=1, description="overrides the bundle manifest's beam width")
    replicas: int = Field(0, ge=0, description="Ray Serve: run each direct engine in its own deployment of this "
                          "many replicas, called by handle (an engine replica's death costs 503s, not 500s); "
                          "0 = engines inside the ingress replica (no extra hop)")
    max_queued: int = Field(16, ge=1, description="Ray Serve, engine deployment: requests waiting for a replica "
                            "beyond this are refused with 503")
    process: bool = Field(False, description="native engine: run the beam search in a child process of its replica "
                          "(a core of its own; batches start as soon as it is free, batch_wait_ms unused)")


class UiSettings(Section):
    """The page at /ui (serving/ui/): on by default; `split_dir` (a split folder written by `reasonrec data split`)
    lists users and marks the items each one interacted with after training."""

    enabled: bool = True
    split_dir: str | None = None
    max_users: int = Field(500, ge=1, le=10_000, description="user ids offered in the page's picker")


class ServeSettings(Section):
    """Everything the online app needs; see deploy/serve.yaml for the documented defaults."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    direct_ingress: bool = Field(False, description="each app replica also answers HTTP on a port of its own "
                                                   "(Ray Serve direct ingress), skipping the proxy hop")
    throughput_optimized: bool = Field(False, description="Ray Serve's RAY_SERVE_THROUGHPUT_OPTIMIZED bundle for "
                                       "the local Ray that `reasonrec serve` starts: user code and router on the "
                                       "replica's main loop, request logs buffered, GC frozen after start-up, "
                                       "gRPC from proxy to replica")
    access_log: bool = Field(False, description="Ray Serve's per-request access log (one line per request in the "
                                                "proxy's and the replica's log files); off by default: it costs "
                                                "CPU on every request and /metrics counts requests already")
    max_k: int = Field(100, ge=1)
    max_body_bytes: int = Field(1 << 20, ge=1024, description="a larger request body is refused with 413")
    request_timeout_s: float = Field(2.0, gt=0)
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_timeout_s: float = Field(0.25, gt=0, description="socket timeout of one Redis call on the request path")
    redis_retries: int = Field(1, ge=0, description="retries of a failed Redis call before its fallback applies")
    namespace: str = Field("reasonrec", min_length=1)
    cold_start: Literal["popularity", "404"] = "popularity"
    reasoning_fallback: Literal["direct", "history_only"] = "direct"
    reasoning_max_in_flight: int = Field(32, ge=1, description="reasoning calls running at once; more -> 503")
    feedback_log: str = Field("runs/serve/feedback.jsonl", min_length=1, description='a JSONL path, or "redis"')
    engine: EngineSettings = EngineSettings()
    ui: UiSettings = UiSettings()
    bundles: dict[str, str] = Field(default_factory=dict)
    experiments: list[ExperimentSettings] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_references(self) -> ServeSettings:
        repeated = sorted(n for n, c in Counter(e.name for e in self.experiments).items() if c > 1)
        if repeated:
            raise ValueError(f"experiment names must be unique; repeated: {repeated}")
        for exp in self.experiments:
            for arm in exp.arms:
                if arm.bundle not in self.bundles:
                    raise ValueError(f"experiment {exp.name!r}, arm {arm.name!r}: bundle {arm.bundle!r} is not a "
                                     f"key of bundles (known: {sorted(self.bundles)})")
        return self

    def bundle_path(self, key: str) -> Path:
        """The path of bundle `key` (KeyError for an unknown key)."""
        return Path(self.bundles[key])

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | None = None) -> ServeSettings:
        """YAML file + `key.sub=value` overrides + REASONREC_REDIS_URL -> settings; ConfigError on any problem."""
        raw = _read_mapping(Path(path))
        raw = apply_overrides(raw, overrides or [])
        if os.environ.get(REDIS_URL_ENV):
            raw["redis_url"] = os.environ[REDIS_URL_ENV]
        try:
            return cls.model_validate(raw)
        except ValidationError as err:
            problems = "; ".join(_describe(e) for e in err.errors())
            raise ConfigError(f"{path}: {problems}") from None


def _read_mapping(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"serve config {str(path)[:200]!r} not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(raw).__name__}")
    return raw


def _describe(error: dict) -> str:
    loc = ".".join(str(p) for p in error["loc"])
    msg = error["msg"].removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg
