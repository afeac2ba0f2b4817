"""Baselines by name: Pop, SASRec, GRU4Rec (DESIGN.md §2). Loading only: training is in `train.py`."""

from __future__ import annotations

import json
from pathlib import Path

from training.baselines.gru4rec import GRU4RecRecommender
from training.baselines.pop import PopRecommender
from training.baselines.sasrec import SASRecRecommender
from training.catalog import Catalog
from training.recommender import ScoringRecommender

BASELINES: dict[str, type] = {
    "pop": PopRecommender,
    "sasrec": SASRecRecommender,
    "gru4rec": GRU4RecRecommender,
}


def baseline_class(name: str) -> type:
    try:
        return BASELINES[name]
    except KeyError:
        raise ValueError(f"unknown baseline {name!r}; choose one of {sorted(BASELINES)}") from None


def load_baseline(folder: Path, catalog: Catalog, device: str = "cpu") -> ScoringRecommender:
    """Load a baseline saved with `.save(folder)`; its name is read from config.json / meta.json."""
    folder = Path(folder)
    meta = folder / "meta.json"
    name = json.loads((meta if meta.exists() else folder / "config.json").read_text())["name"]
    return baseline_class(name).load(folder, catalog, device)
