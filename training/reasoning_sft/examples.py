"""Reasoning SFT examples: the loss covers the completion only (gream.txt §4.3, L_SFT over y_t given X).

Layout (`training.prompts`; the tiny policy's reasoning prompt is the direct layout):

    X = <bos> [profile tokens] <hist> item_1 ... item_n <think>
    Y = CoT pieces </think> <answer> target item tokens </answer>

`<think>` is the prefill (`REASONING_PREFILL`) by default: on the tiny policy both modes share one prompt,
and the caller picks the mode (the trie beam for direct mode, `<think>` for reasoning mode). Training
`<think>` as a target (`think_in_loss=True`) would move probability mass at the first answer position away
from the items the direct mode ranks. The decoder (`decode.py`) always appends it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from training.data.types import Sample
from training.prompts import build_reasoning_prompt, reasoning_target_pieces
from training.reasoning_sft.corpus import ReasoningRecord
from training.reasoning_sft.words import ItemTokens
from training.trainers.sft_data import Example

Encode = Callable[[Sequence[str]], list[int]]


def reasoning_prompt_pieces(sample: Sample, item_tokens: ItemTokens, known: set[str] | None = None) -> list[str]:
    """X without the prefill: `build_reasoning_prompt` with the direct layout's arguments."""
    return build_reasoning_prompt(sample.profile, sample.history, item_tokens, known)


def truncate_prompt(ids: list[int], budget: int) -> list[int]:
    """Keep the first token (<bos>) and the last budget - 1 tokens, as `PolicyRecommender.prompt_ids` does."""
    return ids if len(ids) <= budget else ids[:1] + ids[len(ids) - budget + 1:]


def build_reasoning_example(prompt_ids: list[int], completion_ids: list[int], max_tokens: int) -> Example | None:
    """Example with loss_mask True exactly on the completion; the prompt loses its front to fit `max_tokens`.

    None when the completion leaves fewer than 2 prompt tokens.
    """
    budget = max_tokens - len(completion_ids)
    if budget < 2:
        return None
    prompt = truncate_prompt(prompt_ids, budget)
    return Example(prompt + completion_ids, [False] * len(prompt) + [True] * len(completion_ids))


def build_reasoning_examples(records: Sequence[ReasoningRecord], encode: Encode, item_tokens: ItemTokens,
                             known: set[str] | None = None, max_tokens: int = 512,
                             think_in_loss: bool = False) -> list[Example]:
    """One example per record, in order; records whose completion does not fit `max_tokens` are dropped."""
    examples = []
    for record in records:
        target = reasoning_target_pieces(" ".join(record.cot_pieces), item_tokens(record.sample.target))
        think, completion = target[:1], target[1:]
        prompt = reasoning_prompt_pieces(record.sample, item_tokens, known)
        if think_in_loss:
            prompt_ids, completion_ids = encode(prompt), encode(think + completion)
        else:
            prompt_ids, completion_ids = encode(prompt + think), encode(completion)
        example = build_reasoning_example(prompt_ids, completion_ids, max_tokens)
        if example is not None:
            examples.append(example)
    return examples
