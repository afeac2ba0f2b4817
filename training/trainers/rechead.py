"""Stage-I loop of RPORec (rporec.txt Alg. 1, lines 2-12): train the Rechead on precomputed embeddings.

for epoch: for batch: encode users -> sample negatives -> CE (Eq. 6) -> AdamW step;
then metric -> keep the best weights -> early stop ("if Rechead converged"). The LLM is frozen
and its CoT/answer texts are embedded once beforehand (Alg. 1 line 1), so a batch is tensors only.
No data pipeline or CLI here; the math lives in `training/algorithms/rechead_losses.py`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from typing import Literal

import torch
from pydantic import Field

from training.algorithms.rechead_losses import (
    build_candidates,
    compute_full_softmax_ce_loss,
    compute_sampled_ce_loss,
    sample_negatives,
)
from training.config import Section
from training.models.rechead import Rechead


class RecheadTrainConfig(Section):
    """Stage-I training knobs. The paper gives no k, lr or patience (rporec.txt App. C.3 only says "grid
    search"); these are lean defaults. To move into `training/config.py` when the recipe is wired."""

    max_epochs: int = Field(20, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    loss: Literal["sampled", "full"] = "sampled"
    num_negatives: int = Field(100, ge=1, description="k of Eq. 6 (loss='sampled')")
    temperature: float = Field(1.0, gt=0)
    grad_clip: float = Field(1.0, ge=0, description="max grad norm; 0 = off")
    patience: int = Field(3, ge=1, description="epochs without a better metric before stopping")
    seed: int = 0


@dataclass
class RecheadBatch:
    """Precomputed inputs of one batch: history_emb, cot_emb, answer_emb [B, D] text embeddings;
    answer_parsed bool [B] (Eq. 2); target long [B] catalog indices of v+."""

    history_emb: torch.Tensor
    cot_emb: torch.Tensor
    answer_emb: torch.Tensor
    answer_parsed: torch.Tensor
    target: torch.Tensor

    def to(self, device: torch.device | str) -> RecheadBatch:
        return RecheadBatch(*(getattr(self, f.name).to(device) for f in fields(self)))

    def select(self, rows: torch.Tensor) -> RecheadBatch:
        return RecheadBatch(*(getattr(self, f.name)[rows] for f in fields(self)))

    def __len__(self) -> int:
        return self.target.shape[0]


@dataclass
class RecheadTrainResult:
    """best_epoch: 0-based epoch whose weights the model holds now; history: one record per epoch."""

    best_epoch: int
    best_metric: float | None
    history: list[dict[str, float]] = field(default_factory=list)


def iter_batches(data: RecheadBatch, batch_size: int, seed: int) -> Iterator[RecheadBatch]:
    """`data` (the whole split) in shuffled batches of `batch_size` rows; every row once per call."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    for start in range(0, len(data), batch_size):
        yield data.select(order[start:start + batch_size])


def compute_rechead_loss(
    model: Rechead, batch: RecheadBatch, cfg: RecheadTrainConfig, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, mean gate γ0) of one batch: Eq. 1-5 forward, then Eq. 6 (sampled) or full-catalog CE."""
    enc = model.encode_user_parts(batch.history_emb, batch.cot_emb, batch.answer_emb, batch.answer_parsed)
    if cfg.loss == "full":
        loss = compute_full_softmax_ce_loss(model.score_all(enc.user), batch.target, cfg.temperature)
    else:
        negatives = sample_negatives(batch.target, model.n_items, cfg.num_negatives, generator)
        scores = model.score_candidates(enc.user, build_candidates(batch.target, negatives))
        loss = compute_sampled_ce_loss(scores, cfg.temperature)
    return loss, enc.gate.detach().mean()


def train_rechead(
    model: Rechead,
    batches: Iterable[RecheadBatch] | Callable[[int], Iterable[RecheadBatch]],
    cfg: RecheadTrainConfig,
    metric_fn: Callable[[Rechead], float] | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> RecheadTrainResult:
    """Train `model` in place; return which epoch's weights it ends with.

    batches: a re-iterable of batches (a list, a DataLoader) or `epoch -> batches` (e.g.
    `lambda e: iter_batches(train, 256, seed + e)`). metric_fn: model (in eval mode) -> validation
    metric, higher is better (e.g. NDCG@10); with it the loop stops after `cfg.patience` epochs without
    improvement and restores the best weights; without it, it runs `cfg.max_epochs` and keeps the last.
    on_epoch: called with each epoch's record (epoch, train_loss, gate_mean, metric, seconds).
    """
    torch.manual_seed(cfg.seed)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    result = RecheadTrainResult(best_epoch=-1, best_metric=None)
    best_state, bad_epochs = None, 0
    for epoch in range(cfg.max_epochs):
        started = time.perf_counter()
        model.train()
        losses, gates = [], []
        for batch in batches(epoch) if callable(batches) else batches:
            loss, gate = compute_rechead_loss(model, batch.to(device), cfg, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            losses.append(loss.item())
            gates.append(gate.item())
        if not losses:
            raise ValueError(f"epoch {epoch} had no batches (a one-shot iterator? pass a list or a callable)")
        record = {"epoch": epoch, "train_loss": sum(losses) / len(losses), "gate_mean": sum(gates) / len(gates)}
        if metric_fn is not None:
            model.eval()
            with torch.no_grad():
                record["metric"] = float(metric_fn(model))
        record["seconds"] = time.perf_counter() - started
        result.history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if metric_fn is None:
            result.best_epoch = epoch
            continue
        if result.best_metric is None or record["metric"] > result.best_metric:
            result.best_epoch, result.best_metric, bad_epochs = epoch, record["metric"], 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad_epochs += 1
            if bad_epochs >= cfg.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return result
