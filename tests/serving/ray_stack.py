"""The stack of the Ray Serve integration tests (tests/serving/test_ray_serve.py): bundles, settings, Redis rows.

One deployment serves three arms of the active experiment (a second, inactive experiment is never loaded):

    direct       native engine on bundle `sft`           weight 40
    direct_vllm  vLLM engine on bundle `sft_vllm`        weight 20   (a copy of `sft`: same weights, same version)
    reasoning    Rechead + FAISS + Redis (bundle rechead) weight 40   (direct fallback: the `direct` engine)

`sft_vllm` is a copy so that a test can break it alone: vLLM validates its bundle before starting, so a refused
reload costs no engine start-up. The engine queue is tiny (max_queue 2, batch size 1) so that an overload is
easy to cause; every other test keeps at most one engine request in flight.
Nothing here imports ray: `serving.deployments` does, imported by the test module's fixture only.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from feature_store.schema import UserFeatures, encode_history
from feature_store.store import FeatureStore
from serving.settings import ServeSettings
from tests.policy_bundle import write_tiny_policy_bundle
from tests.serving.bundles import HashEncoder, write_rechead_bundle

COT = "<think>Three dramas in a row; the user wants another drama.</think>"
MAX_K = 10
ENGINE_QUEUE = 2
# Users seeded in Redis (distinctive ids, so /metrics can be searched for them).
COT_USER = "ray-it-user-with-cot"
HISTORY_USER = "ray-it-user-history-only"
COLD_USER = "ray-it-user-cold"
COT_HISTORY = ["1", "3", "5"]
PLAIN_HISTORY = ["2", "4"]
ACTIVE_EXPERIMENT = {"name": "mode_ab", "salt": "ray-it-v1", "arms": [
    {"name": "direct", "mode": "direct", "engine": "native", "bundle": "sft", "weight": 40},
    {"name": "direct_vllm", "mode": "direct", "engine": "vllm", "bundle": "sft_vllm", "weight": 20},
    {"name": "reasoning", "mode": "reasoning", "bundle": "rechead", "weight": 40}]}


@dataclass(frozen=True)
class Bundles:
    """sft (native arm), sft_vllm (vLLM arm: a copy of sft), rechead (reasoning arm)."""

    sft: Path
    sft_vllm: Path
    rechead: Path


def write_bundles(root: Path) -> Bundles:
    """A tiny policy (hidden 64, 2 heads: vLLM's CPU attention needs head_dim >= 32), a copy of it, and a tiny
    Rechead whose item texts come from the hash encoder (384-d, as MiniLM's: the replica encodes requests with
    the real MiniLM, the bundle's featurizer default)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sft = write_tiny_policy_bundle(root / "sft", hidden=64, heads=2)
    finally:
        torch.set_num_threads(threads)
    copy = Path(shutil.copytree(sft, root / "sft_vllm"))
    rechead = write_rechead_bundle(root / "rechead", HashEncoder())
    return Bundles(sft, copy, rechead)


def bundle_version(bundle: Path) -> str:
    return json.loads((bundle / "manifest.json").read_text())["bundle_version"]


def settings_raw(redis_url: str, port: int, bundles: Bundles, feedback_log: Path) -> dict:
    """The serve config of the module, as YAML would hold it."""
    inactive = [{"name": "direct", "mode": "direct", "bundle": "sft", "weight": 1}]
    return {"host": "127.0.0.1", "port": port, "direct_ingress": True, "max_k": MAX_K, "request_timeout_s": 10.0,
            "redis_url": redis_url,
            "redis_timeout_s": 0.25, "redis_retries": 0, "namespace": "reasonrec", "cold_start": "popularity",
            "reasoning_fallback": "direct", "feedback_log": str(feedback_log),
            "engine": {"max_batch_size": 1, "batch_wait_ms": 1.0, "max_queue": ENGINE_QUEUE, "retry_after_s": 1.0},
            "bundles": {"sft": str(bundles.sft), "sft_vllm": str(bundles.sft_vllm), "rechead": str(bundles.rechead)},
            "experiments": [ACTIVE_EXPERIMENT, {"name": "inactive", "salt": "other", "arms": inactive}]}


def write_settings(path: Path, raw: dict) -> ServeSettings:
    """Write `raw` as a serve YAML and load it the way the CLI does."""
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return ServeSettings.from_yaml(path)


def seed_users(settings: ServeSettings) -> None:
    """A user with history + CoT + answer (reasoning path "cot"), one with a history only, none for COLD_USER."""
    with FeatureStore(settings.redis_url, settings.namespace) as store:
        store.write([UserFeatures(COT_USER, 1.0, {"history": encode_history(COT_HISTORY), "cot": COT,
                                                  "answer": json.dumps(["7"])}),
                     UserFeatures(HISTORY_USER, 1.0, {"history": encode_history(PLAIN_HISTORY)})])


def nearline_queue(settings: ServeSettings) -> set[str]:
    """The users waiting for a CoT (`<ns>:nearline:queue`)."""
    from serving.user_vectors import UserVectorStore

    with FeatureStore(settings.redis_url, settings.namespace) as store:
        return UserVectorStore(store).queued()
