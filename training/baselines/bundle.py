"""Baselines as bundles: the same artifact contract and the same cache rules as the policy (DESIGN.md §4)."""

from __future__ import annotations

import time
from pathlib import Path

from training.bundle import source_section, write_bundle
from training.catalog import Catalog
from training.config import RunConfig, SeqConfig
from training.data.split import SplitData
from training.pipeline import data_settings, dataset_section, eval_section, reuse_bundle
from training.recommender import ScoringRecommender


def baseline_bundle_dir(cfg: RunConfig, name: str, tag: str = "") -> Path:
    """runs/<name>[-<tag>]-<dataset>-<protocol>/bundle (tag: e.g. "h128-d0.5-s1" for sweeps and seeds)."""
    label = f"{name}-{tag}" if tag else name
    return Path(cfg.runs_dir) / f"{label}-{cfg.data.dataset}-{cfg.data.protocol}" / "bundle"


def baseline_settings(name: str, cfg: RunConfig, split: SplitData, config: SeqConfig | None) -> dict:
    """What makes a baseline bundle: its name, hyper-parameters (none for Pop), data settings, split hash."""
    return {"baseline": name, "config": config.model_dump(mode="json") if config and name != "pop" else None,
            "data": data_settings(cfg), "split_sha256": split.content_hash}


def save_baseline_bundle(root: Path, recommender: ScoringRecommender, cfg: RunConfig, catalog: Catalog,
                         split: SplitData, summary: dict, settings: dict) -> dict:
    def fill(tmp: Path) -> None:
        catalog.save(tmp / "catalog.json")
        recommender.save(tmp / "model")

    max_len = getattr(getattr(recommender, "config", None), "max_len", cfg.data.max_history)
    return write_bundle(root, fill, "baseline", recommender.name, dataset_section(cfg, split),
                        {"baseline": recommender.name, "training": summary},
                        generation={"max_history": max_len}, eval=eval_section(cfg),
                        source=source_section(settings))


def train_baseline_bundle(name: str, cfg: RunConfig, catalog: Catalog, split: SplitData, force: bool = False,
                          config: SeqConfig | None = None, tag: str = "", device: str = "cpu") -> tuple[Path, bool]:
    """Train baseline `name` into its bundle. Returns (bundle, written); a bundle of other settings is refused."""
    from training.baselines.registry import baseline_class
    from training.baselines.train import train_baseline

    config = None if name == "pop" else config or baseline_class(name).default_config()
    root, settings = baseline_bundle_dir(cfg, name, tag), baseline_settings(name, cfg, split, config)
    if not force and reuse_bundle(root, settings):
        return root, False
    started = time.time()
    recommender = train_baseline(name, split, catalog, config, device=device)
    summary = {"seconds": time.time() - started, "device": device,
               "config": config.model_dump() if config is not None else None}
    save_baseline_bundle(root, recommender, cfg, catalog, split, summary, settings)
    return root, True
