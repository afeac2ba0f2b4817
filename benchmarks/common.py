"""Shared steps of the quality benchmarks: train (cached bundles) -> evaluate -> report row."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from training.baselines.bundle import train_baseline_bundle
from training.bundle import read_manifest
from training.catalog import Catalog
from training.config import RunConfig, load_config
from training.data.split import SplitData
from training.devices import resolve_device
from training.eval.metrics import REPORTED_METRICS
from training.inference import load_recommender
from training.pipeline import evaluate_recommender, train_policy_bundle

METRIC_KEYS = (*REPORTED_METRICS, "seconds_per_1k_samples")


# config sections of other jobs: a policy's run name (its cache key) must not change when they do
# Config sections of other jobs: left out of a policy run's name hash. A new job's section joins this set, or every
# cached policy bundle gets a new name (and is trained again); tests/benchmarks/test_run_names.py checks it.
OTHER_JOBS = {"rl", "rechead", "reasoning", "r2ec"}
POLICY_RUN_SECTIONS = {"name", "runs_dir", "device", "data", "identifiers", "policy", "sft", "eval", "baseline"}


def policy_config(preset: str, protocol: str, overrides: list[str]) -> RunConfig:
    """The preset for `protocol`; its run name carries a hash of the settings, so cached bundles match them."""
    base = load_config(preset, [f"data.protocol={protocol}", *overrides])
    settings = base.model_dump(mode="json", exclude={"name", "device", *OTHER_JOBS})
    reasoning = getattr(base, "reasoning", None)
    if reasoning is not None and reasoning.enabled:  # reasoning SFT makes another policy
        settings["reasoning"] = reasoning.model_dump(mode="json")
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    return base.model_copy(update={"name": f"{base.name}-{protocol}-{digest.hexdigest()[:8]}"})


def _row(name: str, cfg: RunConfig, metrics: dict, train_seconds: float, eval_dir: Path, notes: str) -> dict:
    return {
        "name": name, "dataset": cfg.data.dataset, "protocol": cfg.data.protocol,
        "metrics": {k: metrics[k] for k in METRIC_KEYS if metrics.get(k) is not None},
        "seconds": {"train": round(train_seconds, 1), "eval": round(metrics["seconds"], 1)},
        "predictions": str(eval_dir / "predictions.jsonl"),
        "notes": f"{notes}; {metrics['subset_note']}; seen items filtered: {metrics['filter_seen']}",
    }


def run_policy(name: str, cfg: RunConfig, catalog: Catalog, split: SplitData) -> dict:
    started = time.time()
    device = resolve_device(cfg.device)
    bundle, _ = train_policy_bundle(cfg, catalog, split, device=device)
    manifest = read_manifest(bundle)
    training = manifest["model"]["training"]
    train_seconds = training.get("seconds", time.time() - started)
    eval_dir = bundle.parent / "eval"
    metrics = evaluate_bundle(cfg, bundle, catalog, split)
    ident = manifest.get("identifier") or {}
    row = _row(name, cfg, metrics, train_seconds, eval_dir,
               f"{ident.get('scheme', cfg.identifiers.scheme)} ids, best epoch {training['best_epoch']} "
               f"(valid NDCG@10 {training['best_valid_ndcg@10']:.4f}), beam {cfg.eval.beam_width}, "
               f"seed {cfg.sft.seed}")
    if "collision_rate_before_disambiguation" in ident:
        row["metrics"]["collision_rate"] = ident["collision_rate_before_disambiguation"]
    return row


def run_baseline(name: str, cfg: RunConfig, catalog: Catalog, split: SplitData, config=None, tag: str = "",
                 row_name: str | None = None) -> dict:
    started = time.time()
    device = resolve_device(cfg.device)
    bundle, _ = train_baseline_bundle(name, cfg, catalog, split, config=config, tag=tag, device=device)
    train_seconds = read_manifest(bundle)["model"]["training"].get("seconds", time.time() - started)
    eval_dir = bundle.parent / "eval"
    metrics = evaluate_bundle(cfg, bundle, catalog, split)
    notes = "training-set popularity" if name == "pop" else f"{name} {tag}".strip()
    return _row(row_name or name, cfg, metrics, train_seconds, eval_dir, notes)


def evaluate_bundle(cfg: RunConfig, bundle: Path, catalog: Catalog, split: SplitData) -> dict:
    """Metrics of `bundle` on the shared test subset; predictions in <bundle>/../eval/predictions.jsonl.

    An evaluation already in that folder is reused when its key (bundle version, split, evaluation
    settings) matches; `write_bundle` deletes the folder whenever it replaces the bundle.
    """
    out = bundle.parent / "eval"
    key = eval_key(cfg, bundle, split)
    cached = _cached_evaluation(out, key, bundle)
    if cached is not None:
        return cached
    recommender = load_recommender(bundle, resolve_device(cfg.device), beam_width=cfg.eval.beam_width)
    metrics = evaluate_recommender(cfg, recommender, catalog, split, out)
    (out / "key.json").write_text(json.dumps(key, sort_keys=True))
    return metrics


def eval_key(cfg: RunConfig, bundle: Path, split: SplitData) -> dict:
    return {"bundle_version": read_manifest(bundle)["bundle_version"], "split_sha256": split.content_hash,
            "test_samples": cfg.eval.test_samples, "seed": cfg.eval.seed, "filter_seen": cfg.eval.filter_seen,
            "beam_width": cfg.eval.beam_width}


def _cached_evaluation(out: Path, key: dict, bundle: Path) -> dict | None:
    metrics_path, predictions = out / "metrics.json", out / "predictions.jsonl"
    if not (metrics_path.is_file() and predictions.is_file()):
        return None
    if (out / "key.json").is_file():
        return json.loads(metrics_path.read_text()) if json.loads((out / "key.json").read_text()) == key else None
    # evaluations written before keys existed: trusted only when newer than the bundle and on the same settings
    metrics = json.loads(metrics_path.read_text())
    newer = metrics_path.stat().st_mtime > (bundle / "manifest.json").stat().st_mtime
    same = (metrics.get("filter_seen") == key["filter_seen"] and metrics.get("n_samples") == key["test_samples"]
            and f"(seed {key['seed']})" in metrics.get("subset_note", ""))
    if newer and same and key["beam_width"] == 20:
        (out / "key.json").write_text(json.dumps(key, sort_keys=True))
        return metrics
    return None


def paired_interval(predictions: Path, reference: Path, k: int = 10) -> dict[str, float]:
    """95 % paired bootstrap over users (2,000 resamples) of NDCG@k(predictions) - NDCG@k(reference)."""
    from training.eval.bootstrap import paired_bootstrap_by_user

    users, values = per_sample_ndcg(predictions, k)
    ref_users, ref_values = per_sample_ndcg(reference, k)
    if users != ref_users:
        raise RuntimeError(f"{predictions} and {reference} were not evaluated on the same samples")
    return paired_bootstrap_by_user(users, np.array(values), np.array(ref_values), n_resamples=2000)


def per_sample_ndcg(predictions: Path, k: int = 10) -> tuple[list[str], list[float]]:
    """(user ids, NDCG@k per sample) from a predictions file, for the paired bootstrap."""
    from training.eval.metrics import ndcg_at_k, rank_of_target

    users, values = [], []
    for line in Path(predictions).read_text().splitlines():
        r = json.loads(line)
        users.append(r["user_id"])
        values.append(ndcg_at_k(rank_of_target(r["ranked"], r["target"]), k))
    return users, values
