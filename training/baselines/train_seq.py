"""Shared parts of the sequential baselines (SASRec, GRU4Rec): config, windows, scoring, training loop.

Index layout inside the models: item j in [0, n_items) is the catalog index, index n_items is
padding. Sequences are left-padded to `max_len`, so the last position always holds the most
recent item. Training is the "CE" variant: full-catalog cross-entropy at every position of
windows of `max_len + 1` items cut from each user's training sequence.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from tqdm import tqdm

from training.catalog import Catalog
from training.data.split import SplitData
from training.data.types import Sample
from training.eval.metrics import ndcg_at_k
from training.eval.subset import select_subset
from training.recommender import ScoringRecommender


class SeqConfig(BaseModel):
    """Hyper-parameters of a sequential baseline; saved as config.json next to model.pt."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    hidden: int = Field(64, ge=1)
    n_layers: int = Field(2, ge=1)
    n_heads: int = Field(1, ge=1)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    max_len: int = Field(20, ge=1)
    stride: int = Field(10, ge=1, description="step between training windows of max_len + 1 items")
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    batch_size: int = Field(256, ge=1)
    max_epochs: int = Field(50, ge=1)
    patience: int = Field(3, ge=1)
    min_epochs: int = Field(10, ge=1, description="no early stop before this epoch (GRU4Rec plateaus early)")
    valid_samples: int = Field(2000, ge=0, description="seeded validation subset; 0 = all")
    seed: int = 0
    device: str = "cpu"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def catalog_fingerprint(catalog: Catalog) -> str:
    """sha256 over the catalog's item ids in index order (a saved model is tied to that order)."""
    return hashlib.sha256("\n".join(catalog.item_ids).encode()).hexdigest()


def encode_items(items: Sequence[str], catalog: Catalog) -> list[int]:
    """Raw ids -> catalog indices; ids the catalog does not hold are skipped."""
    return [catalog.index_of(i) for i in items if i in catalog]


def pad_left(rows: Sequence[Sequence[int]], length: int, pad: int) -> torch.Tensor:
    """Keep the last `length` indices of each row and left-pad with `pad` -> LongTensor [n, length]."""
    out = torch.full((len(rows), length), pad, dtype=torch.long)
    for r, row in enumerate(rows):
        tail = list(row)[-length:] if length > 0 else []
        if tail:
            out[r, length - len(tail):] = torch.tensor(tail, dtype=torch.long)
    return out


def build_windows(seqs: Sequence[Sequence[int]], max_len: int, stride: int, pad: int) -> torch.Tensor:
    """Windows of max_len + 1 indices -> LongTensor [n_windows, max_len + 1], left-padded.

    A sequence of L >= 2 items gives windows ending at L, L - stride, ... (> max_len + 1) and one
    starting at 0, so every item is a target at least once; shorter sequences give one window.
    """
    width = max_len + 1
    rows: list[list[int]] = []
    for seq in seqs:
        seq = list(seq)
        if len(seq) < 2:
            continue
        ends = list(range(len(seq), width, -stride)) + [min(width, len(seq))]
        rows.extend(seq[max(0, e - width):e] for e in ends)
    return pad_left(rows, width, pad)


class SeqRecommender(ScoringRecommender):
    """Base of SASRec and GRU4Rec: a torch model mapping [batch, seq] indices to [batch, seq, hidden].

    Subclasses set `name` and implement `build_model(n_items, config) -> nn.Module` whose module
    has `forward(seq [b, L]) -> hidden [b, L, h]` and `logits(hidden [..., h]) -> [..., n_items]`.
    """

    name = "seq"

    def __init__(self, catalog: Catalog, config: SeqConfig):
        self.catalog = catalog
        self.config = config
        self.pad = len(catalog)
        self.model = self.build_model(len(catalog), config).to(config.device)
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
            batch = seq[start:start + batch_size].to(self.config.device)
            hidden = self.model(batch)[:, -1]
            out[start:start + len(batch)] = self.model.logits(hidden).float().cpu().numpy()
        return out

    def save(self, folder: Path) -> None:
        """Write config.json, model.pt (state dict) and meta.json (name, catalog fingerprint, log)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(self.config.model_dump_json(indent=2))
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        torch.save(state, folder / "model.pt")
        meta = {"name": self.name, "n_items": len(self.catalog),
                "catalog_sha256": catalog_fingerprint(self.catalog), "train_log": self.train_log}
        (folder / "meta.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, folder: Path, catalog: Catalog, device: str | None = None) -> SeqRecommender:
        """Rebuild from `save` output; the catalog must be the one the model was trained with."""
        folder = Path(folder)
        config = SeqConfig.model_validate_json((folder / "config.json").read_text())
        if device is not None:
            config = config.model_copy(update={"device": device})
        meta = json.loads((folder / "meta.json").read_text())
        if meta["catalog_sha256"] != catalog_fingerprint(catalog):
            raise ValueError(f"{folder}: catalog differs from the one {meta['name']} was trained on")
        rec = cls(catalog, config)
        state = torch.load(folder / "model.pt", map_location=config.device, weights_only=True)
        rec.model.load_state_dict(state)
        rec.train_log = meta.get("train_log", [])
        return rec

    @classmethod
    def train(cls, split: SplitData, catalog: Catalog, config: SeqConfig | None = None,
              progress: bool = True) -> SeqRecommender:
        """Seed, build, fit on split.train_sequences with early stopping on validation NDCG@10."""
        config = config or cls.default_config()
        seed_everything(config.seed)
        rec = cls(catalog, config)
        fit(rec, split, progress=progress)
        return rec


def validation_ndcg(rec: ScoringRecommender, samples: Sequence[Sample], k: int = 10) -> float:
    """Mean NDCG@k over samples; rank = number of items scored strictly above the target."""
    if not samples:
        return 0.0
    scores = rec.score_all(samples)
    total = 0.0
    for row, s in zip(scores, samples, strict=True):
        if s.target in rec.catalog:
            rank = int((row > row[rec.catalog.index_of(s.target)]).sum())
            total += ndcg_at_k(rank, k)
    return total / len(samples)


def _train_epoch(rec: SeqRecommender, windows: torch.Tensor, opt: torch.optim.Optimizer,
                 gen: torch.Generator, bar: tqdm) -> float:
    """One pass over windows [n, max_len + 1]; returns the mean CE loss over batches."""
    cfg, model = rec.config, rec.model
    model.train()
    order = torch.randperm(len(windows), generator=gen)
    losses = []
    for start in range(0, len(order), cfg.batch_size):
        batch = windows[order[start:start + cfg.batch_size]].to(cfg.device)
        inputs, targets = batch[:, :-1], batch[:, 1:]
        logits = model.logits(model(inputs))  # [b, max_len, n_items]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                               ignore_index=rec.pad)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return float(np.mean(losses)) if losses else float("nan")


def fit(rec: SeqRecommender, split: SplitData, progress: bool = True) -> list[dict]:
    """Adam on CE windows; after each epoch NDCG@10 on a seeded validation subset; stop after
    `patience` epochs in a row without a new best, once `min_epochs` epochs have run.

    The best epoch's state dict is restored at the end. Returns (and stores in rec.train_log)
    one dict per epoch: epoch, loss, valid_ndcg@10, seconds.
    """
    cfg = rec.config
    seqs = [encode_items(s, rec.catalog) for s in split.train_sequences.values()]
    windows = build_windows(seqs, cfg.max_len, cfg.stride, rec.pad)
    if len(windows) == 0:
        raise ValueError("no training sequence has two or more catalog items")
    valid = select_subset(split.valid, cfg.valid_samples, cfg.seed)
    opt = torch.optim.Adam(rec.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    steps = -(-len(windows) // cfg.batch_size)
    best, best_state, bad = float("-inf"), None, 0
    for epoch in range(1, cfg.max_epochs + 1):
        t0 = time.perf_counter()
        with tqdm(total=steps, desc=f"{rec.name} epoch {epoch}", disable=not progress, leave=False) as bar:
            loss = _train_epoch(rec, windows, opt, gen, bar)
        score = validation_ndcg(rec, valid) if valid else -loss
        rec.train_log.append({"epoch": epoch, "loss": loss, "valid_ndcg@10": score,
                              "seconds": time.perf_counter() - t0})
        if progress:
            tqdm.write(f"{rec.name} epoch {epoch}: loss {loss:.4f} valid ndcg@10 {score:.4f}")
        if score > best:
            best, bad = score, 0
            best_state = copy.deepcopy(rec.model.state_dict())
        else:
            bad += 1
            if bad >= cfg.patience and epoch >= cfg.min_epochs:
                break
    rec.model.load_state_dict(best_state)
    return rec.train_log
