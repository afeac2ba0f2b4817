"""The reasoning template added to training/prompts.py (kept here: tests/training/test_prompts.py is not ours)."""

import pytest

from training.cot.teacher import CoT
from training.data.types import UserProfile
from training.prompts import (
    ANSWER,
    ANSWER_END,
    BOS,
    HIST,
    REASONING_INSTRUCTION,
    REASONING_LAYOUT_VERSION,
    THINK,
    THINK_END,
    build_prompt_tokens,
    build_reasoning_prompt,
    format_reasoning_target,
    reasoning_target_pieces,
)

PROFILE = UserProfile("u", "19", "M", "writer")


def sid_tokens(item):
    return (f"<s0_{item}>", f"<s1_{item}>")


@pytest.mark.timeout(5)
def test_tiny_policy_prompt_is_the_direct_layout():
    prompt = build_reasoning_prompt(PROFILE, ["1", "x", "2"], sid_tokens, {"1", "2"})
    assert prompt == build_prompt_tokens(PROFILE, ["1", "x", "2"], sid_tokens, {"1", "2"})
    assert prompt[-4:] == ["<s0_1>", "<s1_1>", "<s0_2>", "<s1_2>"]
    assert isinstance(REASONING_LAYOUT_VERSION, int)


@pytest.mark.timeout(5)
def test_text_model_prompt_writes_titles_with_separators_and_the_instruction():
    titles = {"1": "Heat (1995)", "2": "Fargo (1996)"}
    prompt = build_reasoning_prompt(None, ["1", "2"], lambda i: (titles[i],), instruction=REASONING_INSTRUCTION,
                                    item_separator=";")
    assert prompt == [BOS, HIST, "Heat (1995)", ";", "Fargo (1996)", REASONING_INSTRUCTION]


@pytest.mark.timeout(5)
def test_reasoning_target_format():
    cot = CoT("e", "p", "i", "Recommend X.", "Because.", ("1",), ("Heat (1995)",), "2")
    text = format_reasoning_target(cot, sid_tokens("2"))
    assert text == f"<think>{cot.text()}</think><answer><s0_2><s1_2></answer>"
    assert format_reasoning_target("short", ("Fargo (1996)",)) == "<think>short</think><answer>Fargo (1996)</answer>"
    assert reasoning_target_pieces("t", sid_tokens("2")) == [THINK, "t", THINK_END, ANSWER, "<s0_2>", "<s1_2>",
                                                             ANSWER_END]
