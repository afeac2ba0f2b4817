"""GREAM's hybrid-SFT curriculum: when reasoning batches join the alignment stream (gream.txt §4.3).

gream.txt §4.3 ("Hybrid SFT with Curriculum Learning"), three epochs:

- epochs 1 and 2: after the i-th alignment batch b_align,i (i = 1 .. N_align) a reasoning batch is
  inserted with probability (the unnumbered equation of §4.3)

      p_insert(i) = min(1, gamma * (i / N_align) * (N_reason / N_align)),   gamma = 1.5 ("empirically"),

  N_align = |B_align|, N_reason = |B_reason| (numbers of batches). Reasoning batches left over are
  appended at the end of the epoch, "to ensure all data is utilized". With the cap inactive the expected
  number inserted is about gamma * N_reason / 2, i.e. ~75 % of them for gamma = 1.5.
- epoch 3 ("the final epoch") and later: "a uniform sampling distribution, mixing the two data types
  evenly": every order of the two streams is equally likely (each stream keeps its own order).

Epochs are numbered from 1 as in the paper; epoch 0 is refused so a 0-based loop cannot silently shift
the schedule. Each batch appears exactly once per epoch. Deterministic for (seed, epoch).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal, TypeVar

Kind = Literal["align", "reason"]
T = TypeVar("T")
DEFAULT_GAMMA = 1.5
CURRICULUM_EPOCHS = 2  # epochs 1..2 follow p_insert; later ones mix uniformly


def insertion_probability(i: int, n_align: int, n_reason: int, gamma: float = DEFAULT_GAMMA) -> float:
    """p_insert(i) = min(1, gamma * (i / N_align) * (N_reason / N_align)) (gream.txt §4.3); i in 1..N_align."""
    if n_align < 1 or not 1 <= i <= n_align:
        raise ValueError(f"need 1 <= i <= n_align, got i={i}, n_align={n_align}")
    if n_reason < 0 or gamma < 0:
        raise ValueError(f"need n_reason >= 0 and gamma >= 0, got n_reason={n_reason}, gamma={gamma}")
    return min(1.0, gamma * (i / n_align) * (n_reason / n_align))


def schedule_kinds(n_align: int, n_reason: int, epoch: int, gamma: float = DEFAULT_GAMMA,
                   seed: int = 0) -> list[Kind]:
    """The order of batch kinds for one epoch: n_align "align" and n_reason "reason" entries.

    epoch 1..CURRICULUM_EPOCHS: the p_insert curriculum, leftovers appended; later: a uniformly random
    merge of the two streams.
    """
    if epoch < 1:
        raise ValueError(f"epochs are numbered from 1 (gream.txt §4.3), got {epoch}")
    if n_align < 0 or n_reason < 0:
        raise ValueError(f"batch counts must be >= 0, got n_align={n_align}, n_reason={n_reason}")
    rng = random.Random(f"gream-curriculum:{seed}:{epoch}")
    if epoch > CURRICULUM_EPOCHS:
        kinds: list[Kind] = ["align"] * n_align + ["reason"] * n_reason
        rng.shuffle(kinds)
        return kinds
    kinds, left = [], n_reason
    for i in range(1, n_align + 1):
        kinds.append("align")
        if left and rng.random() < insertion_probability(i, n_align, n_reason, gamma):
            kinds.append("reason")
            left -= 1
    return kinds + ["reason"] * left


def interleave(alignment: Sequence[T], reasoning: Sequence[T], epoch: int, gamma: float = DEFAULT_GAMMA,
               seed: int = 0) -> list[tuple[Kind, T]]:
    """One epoch's batches as (kind, batch), each batch once, each stream in its given order
    (`schedule_kinds` decides which stream comes next)."""
    streams = {"align": iter(alignment), "reason": iter(reasoning)}
    return [(kind, next(streams[kind])) for kind in schedule_kinds(len(alignment), len(reasoning), epoch, gamma,
                                                                      seed)]
