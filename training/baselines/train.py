"""Train a baseline by name on split.train_sequences (Pop counts; SASRec/GRU4Rec fit with early stopping)."""

from __future__ import annotations

from training.baselines.pop import PopRecommender
from training.baselines.registry import baseline_class
from training.baselines.train_seq import train_seq_recommender
from training.catalog import Catalog
from training.config import SeqConfig
from training.data.split import SplitData
from training.recommender import ScoringRecommender


def train_baseline(name: str, split: SplitData, catalog: Catalog, config: SeqConfig | None = None,
                   device: str = "cpu", progress: bool = True) -> ScoringRecommender:
    """config None = the baseline's defaults (Pop: unused)."""
    cls = baseline_class(name)
    if cls is PopRecommender:
        return PopRecommender.train(split, catalog)
    return train_seq_recommender(cls, split, catalog, config, device, progress)
