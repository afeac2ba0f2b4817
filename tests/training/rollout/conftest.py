"""Helpers shared by the beam tests: exact log-probs by teacher forcing and a few history prompts."""

import pytest
import torch


def _exact_logprob(model, prompt: list[int], item_ids: list[int]) -> float:
    """log P(item | prompt) by teacher forcing: sum of per-token log-probs."""
    ids = torch.tensor([prompt + item_ids])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    return sum(logprobs[len(prompt) - 1 + j, t].item() for j, t in enumerate(item_ids))


@pytest.fixture
def exact_logprob():
    return _exact_logprob


@pytest.fixture
def history_prompts(tiny_policy) -> list[list[int]]:
    """Three prompts of different lengths (so left padding matters) over the tiny policy's SIDs."""
    _, tokenizer, scheme = tiny_policy

    def enc(items):
        toks = ["<bos>", "<hist>"] + [t for i in items for t in scheme.item_tokens(i)]
        return tokenizer.convert_tokens_to_ids(toks)
    return [enc(["1", "2", "3"]), enc(["7"]), enc(["4", "4", "9", "10", "11"])]
