"""The one token layout for training and serving (DESIGN.md §4).

    <bos> [profile tokens] <hist> item_1 ... item_n            -> next item id
    <bos> <align> text words <sep> item                         (alignment task)

Each item is written as its identifier tokens (`IdentifierScheme.item_tokens`).
Serving imports `build_prompt_tokens` so both sides build the same layout.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from training.data.types import ItemInfo, UserProfile

BOS, EOS, PAD, UNK, SEP = "<bos>", "<eos>", "<pad>", "<unk>", "<sep>"
HIST, ALIGN = "<hist>", "<align>"
THINK, THINK_END, ANSWER, ANSWER_END = "<think>", "</think>", "<answer>", "</answer>"
PROMPT_LAYOUT_VERSION = 1  # bump when the layout changes; bundles record the version they were trained with
STRUCTURE_TOKENS = [PAD, BOS, EOS, UNK, SEP, HIST, ALIGN, THINK, THINK_END, ANSWER, ANSWER_END]
AGE_BUCKETS = ((18, "<18"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (50, "45-49"), (56, "50-55"))
_WORD = re.compile(r"[a-z0-9]+")


def age_bucket(age: str) -> str:
    if not age.isdigit():
        return "unknown"
    for upper, label in AGE_BUCKETS:
        if int(age) < upper:
            return label
    return "56+"


def profile_tokens(profile: UserProfile | None) -> list[str]:
    """Profile as three tokens; empty when the dataset has no profiles."""
    if profile is None:
        return []
    return [f"<age_{age_bucket(profile.age)}>", f"<gender_{profile.gender or 'unknown'}>",
            f"<occ_{(profile.occupation or 'unknown').replace(' ', '_')}>"]


def text_words(text: str) -> list[str]:
    """Lower-cased alphanumeric words of an item text (alignment-task vocabulary)."""
    return _WORD.findall(text.lower())


def build_prompt_tokens(
    profile: UserProfile | None, history: Sequence[str], item_tokens, known: set[str] | None = None
) -> list[str]:
    """Prompt for next-item prediction; `item_tokens(raw_id) -> tuple[str, ...]`.

    History items outside `known` (when given) are skipped: the model has no id for them.
    """
    tokens = [BOS, *profile_tokens(profile), HIST]
    for item in history:
        if known is None or item in known:
            tokens.extend(item_tokens(item))
    return tokens


def build_alignment_tokens(info: ItemInfo, item_tokens, max_words: int = 24) -> tuple[list[str], int]:
    """Item text -> its identifier. Returns (tokens, index where the identifier starts)."""
    prefix = [BOS, ALIGN, *text_words(info.text)[:max_words], SEP]
    return prefix + list(item_tokens(info.item_id)), len(prefix)
