"""SFT loop: next-item identifiers over sequence windows + item<->id alignment (DESIGN.md §5).

build -> for epoch: for batch: loss -> step -> log; validate (NDCG@10 on a fixed
subset) -> keep best -> early stop. Resumes from `run_dir/last.pt`.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from training.config import SFTConfig, config_differences
from training.data.types import Sample
from training.eval.metrics import per_sample_metrics
from training.trainers.run_files import save_atomic, write_jsonl
from training.trainers.sft_data import Example, collate


def compute_next_token_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean CE over labelled positions; logits only where a label exists (cheap LM head).

    input_ids, attention_mask, labels: [B, T]; position t-1 predicts token t.
    """
    hidden = model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    targets = batch["labels"][:, 1:]
    selected = targets != -100
    logits = model.lm_head(hidden[:, :-1][selected])
    return torch.nn.functional.cross_entropy(logits.float(), targets[selected])


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up, then cosine decay to 10 %."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def validate(recommender, samples: Sequence[Sample], batch_size: int = 64) -> float:
    """NDCG@10 of `recommender.rank` on `samples`."""
    ranked = []
    for start in range(0, len(samples), batch_size):
        ranked.extend(recommender.rank(samples[start:start + batch_size], 10))
    return float(per_sample_metrics(ranked, [s.target for s in samples], ks=(10,))["ndcg@10"].mean())


def _batches(examples: list[Example], batch_size: int, rng: random.Random) -> list[list[Example]]:
    """Shuffled batches of similar lengths (sort inside chunks of 50 batches) to cut padding."""
    order = examples[:]
    rng.shuffle(order)
    chunk = batch_size * 50
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start:start + chunk], key=lambda e: len(e.input_ids))
        batches.extend(part[i:i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed: unreadable, or written by other settings."""


def train_sft(model, examples: list[Example], pad_id: int, cfg: SFTConfig, run_dir: Path,
              recommender, valid_samples: Sequence[Sample], device: str = "cpu",
              fingerprint: dict | None = None) -> dict:
    """Train in place; leaves the best-validation weights in `model`. Returns the training summary.

    fingerprint: JSON-ready description of what makes this run (configs, split hash); a
    `last.pt` written under another fingerprint is refused, never silently resumed.
    """
    if not examples or not valid_samples:
        raise ValueError(f"nothing to train on: {len(examples)} examples, {len(valid_samples)} validation samples")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    steps_per_epoch = math.ceil(len(examples) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.max_epochs
    fingerprint = fingerprint if fingerprint is not None else {"sft": cfg.model_dump(mode="json")}
    state = _resume(run_dir, model, optimizer, fingerprint)
    for epoch in range(state["epoch"], cfg.max_epochs):
        if state["bad_epochs"] >= cfg.patience:
            break
        start = time.time()
        model.train()
        batches = _batches(examples, cfg.batch_size, random.Random(cfg.seed * 1000 + epoch))
        losses = []
        for i, batch in enumerate(tqdm(batches, desc=f"sft epoch {epoch + 1}/{cfg.max_epochs}", leave=False)):
            lr = cfg.lr * lr_factor(epoch * steps_per_epoch + i, cfg.warmup_steps, total_steps)
            losses.append(train_step(model, optimizer, collate(batch, pad_id), lr, cfg.grad_clip, device))
        model.eval()
        ndcg = validate(recommender, valid_samples)
        improved = ndcg > state["best_ndcg"]
        state.update(epoch=epoch + 1, bad_epochs=0 if improved else state["bad_epochs"] + 1)
        if improved:
            state.update(best_ndcg=ndcg, best_epoch=epoch + 1)
            save_atomic(model.state_dict(), run_dir / "best.pt")
        _record_epoch(state, epoch, float(np.mean(losses)), ndcg, time.time() - start, improved)
        save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "state": state,
                      "fingerprint": fingerprint}, run_dir / "last.pt")
        write_jsonl(run_dir / "log.jsonl", state["log"])
    if (run_dir / "best.pt").exists():
        model.load_state_dict(torch.load(run_dir / "best.pt", weights_only=True, map_location=device))
    model.eval()
    return {"best_epoch": state["best_epoch"], "best_valid_ndcg@10": state["best_ndcg"],
            "epochs_run": state["epoch"]}


def train_step(model, optimizer, batch: dict[str, torch.Tensor], lr: float, grad_clip: float, device: str) -> float:
    for group in optimizer.param_groups:
        group["lr"] = lr
    loss = compute_next_token_loss(model, {k: v.to(device) for k, v in batch.items()})
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def _record_epoch(state: dict, epoch: int, loss: float, ndcg: float, seconds: float, improved: bool) -> None:
    state["log"].append({"epoch": epoch + 1, "train_loss": loss, "valid_ndcg@10": ndcg, "seconds": seconds})
    tqdm.write(f"epoch {epoch + 1}: loss {loss:.4f}  valid NDCG@10 {ndcg:.4f}"
               f"  ({seconds:.0f}s){'  *best' if improved else ''}")


def _resume(run_dir: Path, model, optimizer, fingerprint: dict) -> dict:
    last = run_dir / "last.pt"
    if not last.exists():
        return {"epoch": 0, "best_ndcg": -1.0, "best_epoch": 0, "bad_epochs": 0, "log": []}
    try:
        checkpoint = torch.load(last, weights_only=False, map_location=next(model.parameters()).device)
    except Exception as err:  # torch raises many types for a damaged file
        raise CheckpointError(f"{last} is unreadable ({type(err).__name__}); delete it or pass --force") from None
    old = checkpoint.get("fingerprint") if isinstance(checkpoint, dict) else None
    if old != fingerprint:
        diffs = config_differences(old or {}, fingerprint)
        raise CheckpointError(f"{last} was written by other settings ({'; '.join(diffs[:5]) or 'unknown'}); "
                              "pass --force to start over")
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    tqdm.write(f"resuming from {last} after epoch {checkpoint['state']['epoch']}")
    state = {"log": [], **checkpoint["state"]}
    write_jsonl(run_dir / "log.jsonl", state["log"])
    return state
