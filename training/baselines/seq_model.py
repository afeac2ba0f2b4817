"""The inference half of the sequential baselines (SASRec, GRU4Rec): scoring, save, load.

Index layout inside the models: item j in [0, n_items) is the catalog index, index n_items is
padding. Histories are left-padded to `max_len`, so the last position always holds the most
recent item. Training lives in `train_seq.py`; this module imports no trainer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from training.catalog import Catalog
from training.config import SeqConfig
from training.data.types import Sample
from training.padding import pad_rows
from training.recommender import ScoringRecommender


def catalog_fingerprint(catalog: Catalog) -> str:
    """sha256 over the catalog's item ids in index order (a saved model is tied to that order)."""
    return hashlib.sha256("\n".join(catalog.item_ids).encode()).hexdigest()


def encode_items(items: Sequence[str], catalog: Catalog) -> list[int]:
    """Raw ids -> catalog indices; ids the catalog does not hold are skipped."""
    return [catalog.index_of(i) for i in items if i in catalog]


def pad_left(rows: Sequence[Sequence[int]], length: int, pad: int) -> torch.Tensor:
    """Keep the last `length` indices of each row and left-pad with `pad` -> LongTensor [n, length]."""
    return pad_rows(rows, pad, side="left", length=length)[0]


class SeqRecommender(ScoringRecommender):
    """Base of SASRec and GRU4Rec: a torch model mapping [batch, seq] indices to [batch, seq, hidden].

    Subclasses set `name` and implement `build_model(n_items, config) -> nn.Module` whose module
    has `forward(seq [b, L]) -> hidden [b, L, h]` and `logits(hidden [..., h]) -> [..., n_items]`.
    """

    name = "seq"

    def __init__(self, catalog: Catalog, config: SeqConfig, device: str = "cpu"):
        self.catalog = catalog
        self.config = config
        self.device = device
        self.pad = len(catalog)
        self.model = self.build_model(len(catalog), config).to(device)
        self.train_log: list[dict] = []

    @staticmethod
    def build_model(n_items: int, config: SeqConfig) -> nn.Module:
        raise NotImplementedError

    @classmethod
    def default_config(cls) -> SeqConfig:
        return SeqConfig()

    def encode_histories(self, samples: Sequence[Sample]) -> torch.Tensor:
        """Sample histories -> LongTensor [n, max_len] (unknown ids skipped, left-padded)."""
        rows = [encode_items(s.history, self.catalog) for s in samples]
        return pad_left(rows, self.config.max_len, self.pad)

    @torch.no_grad()
    def score_all(self, samples: Sequence[Sample], batch_size: int = 1024) -> np.ndarray:
        """Scores float32 [n_samples, n_items] in catalog index order (last-position logits)."""
        self.model.eval()
        seq = self.encode_histories(samples)
        out = np.empty((len(samples), len(self.catalog)), dtype=np.float32)
        for start in range(0, len(samples), batch_size):
            batch = seq[start:start + batch_size].to(self.device)
            hidden = self.model(batch)[:, -1]
            out[start:start + len(batch)] = self.model.logits(hidden).float().cpu().numpy()
        return out

    def save(self, folder: Path) -> None:
        """Write config.json, model.pt (CPU state dict) and meta.json (name, catalog fingerprint, log)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(self.config.model_dump_json(indent=2))
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        torch.save(state, folder / "model.pt")
        meta = {"name": self.name, "n_items": len(self.catalog),
                "catalog_sha256": catalog_fingerprint(self.catalog), "train_log": self.train_log}
        (folder / "meta.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, folder: Path, catalog: Catalog, device: str = "cpu") -> SeqRecommender:
        """Rebuild from `save` output on `device`; the catalog must be the one the model was trained with."""
        folder = Path(folder)
        raw = json.loads((folder / "config.json").read_text())
        raw.pop("device", None)  # bundles written before the one device setting carried their own
        config = SeqConfig.model_validate(raw)
        meta = json.loads((folder / "meta.json").read_text())
        if meta["catalog_sha256"] != catalog_fingerprint(catalog):
            raise ValueError(f"{folder}: catalog differs from the one {meta['name']} was trained on")
        rec = cls(catalog, config, device)
        rec.model.load_state_dict(torch.load(folder / "model.pt", map_location=device, weights_only=True))
        rec.train_log = meta.get("train_log", [])
        return rec
