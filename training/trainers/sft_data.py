"""SFT examples: windows of user sequences with loss at every item position (DESIGN.md §8).

An example is (input_ids, loss_mask): loss_mask[t] says input_ids[t] is a
target, predicted from positions < t. Windows of `window` items move by
`stride`; the first window supervises every item after the first, later
windows only their last `stride` items, so each position of a user's training
sequence is a target exactly once, with 0..window-1 items of context.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from training.catalog import Catalog
from training.data.types import UserProfile
from training.padding import pad_rows
from training.prompts import build_alignment_tokens, build_prompt_tokens


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    loss_mask: list[bool]


def window_starts(n_items: int, window: int, stride: int) -> list[int]:
    """Start offsets covering a sequence of `n_items`: 0, stride, 2*stride, ... while items remain."""
    if n_items < 2:
        return []
    starts = [0]
    while starts[-1] + window < n_items:
        starts.append(starts[-1] + stride)
    return starts


def build_window_example(
    prefix_ids: list[int], items: Sequence[Sequence[int]], first_target: int
) -> Example:
    """prefix_ids: profile prompt ids; items: token ids per item; items[first_target:] are targets."""
    input_ids, mask = list(prefix_ids), [False] * len(prefix_ids)
    for index, ids in enumerate(items):
        input_ids.extend(ids)
        mask.extend([index >= first_target] * len(ids))
    return Example(input_ids, mask)


def build_sequence_examples(
    train_sequences: Mapping[str, list[str]], profiles: Mapping[str, UserProfile],
    encode_tokens: Callable[[Sequence[str]], list[int]], item_ids: Mapping[str, Sequence[int]],
    item_tokens, window: int = 21, stride: int = 10,
) -> list[Example]:
    """One example per window of every user's training sequence (users in sorted order)."""
    if not 0 < stride < window:
        raise ValueError(f"need 0 < stride < window, got stride={stride}, window={window}")
    examples = []
    for user in sorted(train_sequences):
        seq = [i for i in train_sequences[user] if i in item_ids]
        prefix = encode_tokens(build_prompt_tokens(profiles.get(user), [], item_tokens))
        for start in window_starts(len(seq), window, stride):
            chunk = [item_ids[i] for i in seq[start:start + window]]
            first_target = 1 if start == 0 else window - stride
            examples.append(build_window_example(prefix, chunk, first_target))
    return examples


def build_alignment_examples(
    catalog: Catalog, encode_tokens: Callable[[Sequence[str]], list[int]], item_tokens,
) -> list[Example]:
    """Item text -> identifier, one example per catalog item (cold items included)."""
    examples = []
    for info in catalog.items:
        tokens, start = build_alignment_tokens(info, item_tokens)
        ids = encode_tokens(tokens)
        examples.append(Example(ids, [t >= start for t in range(len(ids))]))
    return examples


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch: input_ids, attention_mask [B, T]; labels [B, T] (-100 = no loss)."""
    ids, attention = pad_rows([e.input_ids for e in examples], pad_id, side="right")
    targets, _ = pad_rows([[int(m) for m in e.loss_mask] for e in examples], 0, side="right")
    labels = ids.masked_fill(targets == 0, -100)
    return {"input_ids": ids, "attention_mask": attention, "labels": labels}
