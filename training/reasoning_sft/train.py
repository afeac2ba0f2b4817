"""Hybrid SFT with GREAM's curriculum: D_SFT = D_align ∪ D_reason (gream.txt §4.3).

build -> for epoch 1..E: shuffle each stream into batches -> order them with `training.cot.curriculum.interleave`
(epochs 1-2: a reasoning batch follows alignment batch i with p_insert(i) = min(1, γ·i/N_align·N_reason/N_align),
leftovers appended; epoch 3+: uniform mix) -> for batch: L_SFT (mean NLL over labelled tokens) -> step -> log
-> optional validation, best weights kept. The "alignment" stream is whatever direct-mode data the caller has
(sequence windows of `build_sequence_examples` plus `build_alignment_examples`); no math lives here.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch

from training.cot.curriculum import DEFAULT_GAMMA, interleave
from training.trainers.sft import lr_factor, train_step
from training.trainers.sft_data import Example, collate


@dataclass(frozen=True)
class ReasoningSFTSettings:
    """What a `reasoning_sft` config section would hold (see the package report for the wiring).

    gamma: curriculum pace γ (gream.txt §4.3, 1.5); epochs: GREAM uses 3 (2 curriculum + 1 uniform);
    max_reasoning_samples: 0 = a reasoning example for every training sample; max_tokens: prompt + completion.
    """

    gamma: float = DEFAULT_GAMMA
    epochs: int = 3
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 0.1
    warmup_steps: int = 20
    grad_clip: float = 1.0
    max_reasoning_samples: int = 0
    max_tokens: int = 512
    think_in_loss: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.gamma < 0 or self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.max_tokens < 8:
            raise ValueError(f"invalid reasoning SFT settings: {asdict(self)}")


def shuffled_batches(examples: Sequence[Example], batch_size: int, rng: random.Random) -> list[list[Example]]:
    """Examples shuffled, then cut into batches of `batch_size` (the last may be smaller)."""
    order = list(examples)
    rng.shuffle(order)
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def train_reasoning_sft(model, align_examples: Sequence[Example], reason_examples: Sequence[Example], pad_id: int,
                        settings: ReasoningSFTSettings, device: str = "cpu",
                        validate: Callable[[int], float] | None = None) -> dict:
    """Train in place. validate(epoch) -> score (higher is better) after each epoch; with it, the best epoch's
    weights are left in `model`. Returns {"log": per-epoch dicts, "best_epoch", "best_score", "steps"}."""
    if not align_examples and not reason_examples:
        raise ValueError("nothing to train on: no alignment and no reasoning examples")
    torch.manual_seed(settings.seed)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay,
                                  betas=(0.9, 0.98))
    per_epoch = -(-len(align_examples) // settings.batch_size) - (-len(reason_examples) // settings.batch_size)
    total, step = per_epoch * settings.epochs, 0
    log, best_score, best_epoch, best_state = [], float("-inf"), 0, None
    for epoch in range(1, settings.epochs + 1):
        rng = random.Random(f"reasoning-sft:{settings.seed}:{epoch}")
        align = shuffled_batches(align_examples, settings.batch_size, rng)
        reason = shuffled_batches(reason_examples, settings.batch_size, rng)
        losses: dict[str, list[float]] = {"align": [], "reason": []}
        model.train()
        for kind, batch in interleave(align, reason, epoch, settings.gamma, settings.seed):
            lr = settings.lr * lr_factor(step, settings.warmup_steps, total)
            losses[kind].append(train_step(model, optimizer, collate(batch, pad_id), lr, settings.grad_clip, device))
            step += 1
        model.eval()
        entry = {"epoch": epoch, **{f"{k}_loss": sum(v) / len(v) for k, v in losses.items() if v},
                 **{f"{k}_batches": len(v) for k, v in losses.items()}}
        if validate is not None:
            entry["valid_score"] = score = float(validate(epoch))
            if score > best_score:
                best_score, best_epoch = score, epoch
                best_state = copy.deepcopy(model.state_dict())
        log.append(entry)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return {"log": log, "best_epoch": best_epoch or settings.epochs,
            "best_score": best_score if validate is not None else None, "steps": step}


