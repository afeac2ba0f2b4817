"""Training of the sequential baselines (SASRec, GRU4Rec): windows, validation, the loop.

Models and scoring live in `seq_model.py`. Training is the "CE" variant: full-catalog cross-entropy at every position of
windows of `max_len + 1` items cut from each user's training sequence.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from training.baselines.seq_model import SeqRecommender, encode_items, pad_left
from training.catalog import Catalog
from training.config import SeqConfig
from training.data.split import SplitData
from training.data.types import Sample
from training.eval.metrics import ndcg_at_k
from training.eval.subset import select_subset
from training.recommender import ScoringRecommender


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


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


def train_seq_recommender(cls: type[SeqRecommender], split: SplitData, catalog: Catalog,
                          config: SeqConfig | None = None, device: str = "cpu",
                          progress: bool = True) -> SeqRecommender:
    """Seed, build `cls`, fit on split.train_sequences with early stopping on validation NDCG@10."""
    config = config or cls.default_config()
    seed_everything(config.seed)
    rec = cls(catalog, config, device)
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
        batch = windows[order[start:start + cfg.batch_size]].to(rec.device)
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
