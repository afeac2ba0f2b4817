"""Baselines by name: Pop, SASRec, GRU4Rec trained on the same split files (DESIGN.md §2)."""

from __future__ import annotations

import json
from pathlib import Path

from training.baselines.gru4rec import GRU4RecRecommender
from training.baselines.pop import PopRecommender
from training.baselines.sasrec import SASRecRecommender
from training.baselines.train_seq import SeqConfig
from training.catalog import Catalog
from training.data.split import SplitData
from training.recommender import ScoringRecommender

BASELINES: dict[str, type] = {
    "pop": PopRecommender,
    "sasrec": SASRecRecommender,
    "gru4rec": GRU4RecRecommender,
}


def _get(name: str) -> type:
    try:
        return BASELINES[name]
    except KeyError:
        raise ValueError(f"unknown baseline {name!r}; choose one of {sorted(BASELINES)}") from None


def train_baseline(name: str, split: SplitData, catalog: Catalog, config: SeqConfig | None = None,
                   progress: bool = True) -> ScoringRecommender:
    """Train baseline `name` on split.train_sequences; config None = the baseline's defaults (Pop: unused)."""
    return _get(name).train(split, catalog, config, progress=progress)


def load_baseline(folder: Path, catalog: Catalog) -> ScoringRecommender:
    """Load a baseline saved with `.save(folder)`; its name is read from config.json / meta.json."""
    folder = Path(folder)
    meta = folder / "meta.json"
    name = json.loads((meta if meta.exists() else folder / "config.json").read_text())["name"]
    return _get(name).load(folder, catalog)
