"""Baselines as bundles: the same artifact contract as the policy (DESIGN.md §4)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from training.bundle import load_bundle_catalog, validate_bundle, write_manifest
from training.catalog import Catalog
from training.config import RunConfig
from training.data.split import SplitData
from training.recommender import ScoringRecommender


def baseline_bundle_dir(cfg: RunConfig, name: str, tag: str = "") -> Path:
    """runs/<name>[-<tag>]-<dataset>-<protocol>/bundle (tag: e.g. "h128-d0.5-s1" for sweeps and seeds)."""
    label = f"{name}-{tag}" if tag else name
    return Path(cfg.runs_dir) / f"{label}-{cfg.data.dataset}-{cfg.data.protocol}" / "bundle"


def save_baseline_bundle(root: Path, recommender: ScoringRecommender, cfg: RunConfig, catalog: Catalog,
                         split: SplitData, summary: dict) -> dict:
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    catalog.save(tmp / "catalog.json")
    recommender.save(tmp / "model")
    dataset = {"name": cfg.data.dataset, "protocol": split.protocol, "split_sha256": split.content_hash}
    manifest = write_manifest(tmp, "baseline", recommender.name, dataset,
                              {"baseline": recommender.name, "training": summary})
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return manifest


def train_baseline_bundle(name: str, cfg: RunConfig, catalog: Catalog, split: SplitData,
                          force: bool = False, config=None, tag: str = "") -> Path:
    """Train baseline `name` on the split and write its bundle (skipped when a valid one exists)."""
    from training.baselines.registry import train_baseline

    root = baseline_bundle_dir(cfg, name, tag)
    if not force and (root / "manifest.json").exists():
        validate_bundle(root)
        return root
    started = time.time()
    recommender = train_baseline(name, split, catalog, config)
    summary = {"seconds": time.time() - started,
               "config": config.model_dump() if hasattr(config, "model_dump") else None}
    save_baseline_bundle(root, recommender, cfg, catalog, split, summary)
    return root


def load_baseline_bundle(root: Path) -> ScoringRecommender:
    from training.baselines.registry import load_baseline

    validate_bundle(root)
    return load_baseline(Path(root) / "model", load_bundle_catalog(root))
