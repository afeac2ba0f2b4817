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


# Reasoning mode (gream.txt §4.2, DeepSeek-R1 template; rporec.txt §2.2.1): the completion is
#     <think>{five-stage chain of thought}</think><answer>{item identifier}</answer>
# parsed by `training.cot.parse.parse_reasoning`. Versioned apart from the direct layout above.
REASONING_LAYOUT_VERSION = 1  # bump when the reasoning prompt or target changes
REASONING_PREFILL = THINK  # append to a reasoning prompt to force reasoning mode; the parser accepts the open think
REASONING_INSTRUCTION = (
    "Think step by step inside <think></think>: 1 behavioural evidence, 2 latent preferences, 3 intent, "
    "4 recommendation and justification, 5 denoised history. Then write the next item inside <answer></answer>."
)
# R²ec on a text LLM (r2ec.txt App. D): titles joined by ";", then this instruction; the rec head answers after
# `<answer>`, so the instruction asks for reasoning only, in plain words.
R2EC_INSTRUCTION = ("These are the movies this viewer watched, oldest first. Reason step by step about their tastes "
                    "and what they will want to watch next.")


def r2ec_prompt_kwargs(style: str) -> dict:
    """`build_reasoning_prompt` keywords of an R²ec prompt style: "tokens" (the direct layout) or "text"."""
    if style == "tokens":
        return {}
    if style == "text":
        return {"instruction": R2EC_INSTRUCTION, "item_separator": ";"}
    raise ValueError(f"unknown R2ec prompt style {style!r}; choose 'tokens' or 'text'")


def build_reasoning_prompt(
    profile: UserProfile | None, history: Sequence[str], item_tokens, known: set[str] | None = None,
    instruction: str | None = None, item_separator: str | None = None,
) -> list[str]:
    """Prompt pieces for reasoning mode; `item_tokens(raw_id) -> tuple[str, ...]` as in `build_prompt_tokens`.

    Tiny policy (word-level vocabulary, no instruction words): item_tokens = `scheme.item_tokens` (SID or
    atomic tokens), no instruction, no separator -> exactly the direct layout,
        <bos> [profile tokens] <hist> item_1 ... item_n
    and the completion's first token `<think>` selects reasoning mode (or the caller appends REASONING_PREFILL).
    Text LLM: item_tokens = titles (`TitleScheme.item_tokens`: one display-name piece per item),
    item_separator e.g. ";", instruction = REASONING_INSTRUCTION (one piece, last):
        <bos> [profile tokens] <hist> Title 1 ; Title 2 ; ... Title n {instruction}
    History items outside `known` (when given) are skipped, as in the direct layout.
    """
    tokens = [BOS, *profile_tokens(profile), HIST]
    written = [item_tokens(item) for item in history if known is None or item in known]
    for position, pieces in enumerate(written):
        if position and item_separator:
            tokens.append(item_separator)
        tokens.extend(pieces)
    if instruction:
        tokens.append(instruction)
    return tokens


def _cot_text(cot) -> str:
    """A chain of thought as text: a str as is, else `cot.text()` (`training.cot.teacher.CoT`)."""
    return cot if isinstance(cot, str) else cot.text()


def reasoning_target_pieces(cot, answer_tokens: Sequence[str]) -> list[str]:
    """[<think>, cot text, </think>, <answer>, *answer_tokens, </answer>] for `encode_pieces`.

    cot: str or an object with `text()`. For a word-level tokenizer, pass the text with item tokens
    separated by spaces (e.g. `cot.text(lambda i: " ".join(scheme.item_tokens(i)), " ")`).
    """
    return [THINK, _cot_text(cot), THINK_END, ANSWER, *answer_tokens, ANSWER_END]


def format_reasoning_target(cot, answer_tokens: Sequence[str]) -> str:
    """"<think>{cot text}</think><answer>{answer tokens joined}</answer>": the reasoning completion as text."""
    return f"{THINK}{_cot_text(cot)}{THINK_END}{ANSWER}{''.join(answer_tokens)}{ANSWER_END}"
