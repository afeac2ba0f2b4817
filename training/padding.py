"""Padding of token-id rows into one batch tensor (the single helper every trainer and generator uses)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch


def pad_rows(
    rows: Sequence[Sequence[int]], pad_id: int, side: Literal["left", "right"] = "left", length: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids LongTensor [n, width], mask LongTensor [n, width], 1 = real token).

    width = length or the longest row (0 for no rows); with `length`, rows longer than it keep their
    LAST `length` entries. side: where the padding goes.
    """
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    if length is not None and length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    width = length if length is not None else max((len(r) for r in rows), default=0)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        kept = list(row)[len(row) - width:] if len(row) > width else list(row)
        if not kept:
            continue
        start = width - len(kept) if side == "left" else 0
        ids[i, start:start + len(kept)] = torch.tensor(kept, dtype=torch.long)
        mask[i, start:start + len(kept)] = 1
    return ids, mask
