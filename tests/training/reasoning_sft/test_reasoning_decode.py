"""Stage 1 of reasoning decoding: token picking and CoT generation (training/reasoning_sft/decode.py)."""

from __future__ import annotations

import pytest
import torch

from training.prompts import THINK, THINK_END
from training.reasoning_sft.decode import generate_thoughts, pick_next_tokens

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.timeout(10)
def test_greedy_picks_the_argmax():
    logits = torch.tensor([[0.0, 2.0, 1.0], [5.0, -1.0, 4.0]])
    assert pick_next_tokens(logits, 0.0, 0.9).tolist() == [1, 0]


@pytest.mark.timeout(10)
def test_top_p_keeps_the_smallest_nucleus_reaching_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(400, 1)
    generator = torch.Generator().manual_seed(0)
    # masses before each token: 0, 0.5, 0.8, 0.95 -> p=0.7 keeps tokens 0 and 1; p=0.5 keeps token 0 only
    drawn = set(pick_next_tokens(logits, 1.0, 0.7, generator).tolist())
    assert drawn == {0, 1}
    assert set(pick_next_tokens(logits, 1.0, 0.5, generator).tolist()) == {0}
    assert set(pick_next_tokens(logits, 1.0, 1.0, generator).tolist()) == {0, 1, 2, 3}


def think_prompts(kit, n=3):
    return [kit.encode(["<bos>", "<hist>", *kit.scheme.item_tokens(s.sample.history[-1]), THINK])
            for s in kit.records[:n]]


@pytest.mark.timeout(20)
def test_untrained_policy_is_cut_at_the_limit_and_never_writes_banned_tokens(tiny_kit, policy_for):
    model, vocab = policy_for(tiny_kit), tiny_kit.tokenizer.get_vocab()
    banned = {vocab[t] for t in ("<pad>", "<bos>", "<unk>", "<answer>", "</answer>", THINK)}
    generator = torch.Generator().manual_seed(1)
    out = generate_thoughts(model, think_prompts(tiny_kit), 2, vocab[THINK_END], tiny_kit.tokenizer.pad_token_id,
                            banned, max_new_tokens=6, temperature=1.0, top_p=1.0, generator=generator)
    assert [len(group) for group in out] == [2, 2, 2]
    for group in out:
        for ids, closed in group:
            assert len(ids) <= 6 and (closed or len(ids) == 6)
            assert not banned.intersection(ids) and vocab[THINK_END] not in ids


@pytest.mark.timeout(20)
def test_a_policy_that_can_only_close_writes_empty_closed_thoughts(tiny_kit, policy_for):
    model, vocab = policy_for(tiny_kit), tiny_kit.tokenizer.get_vocab()
    banned = set(vocab.values()) - {vocab[THINK_END]}
    out = generate_thoughts(model, think_prompts(tiny_kit, 2), 1, vocab[THINK_END], tiny_kit.tokenizer.pad_token_id,
                            banned, max_new_tokens=8)
    assert out == [[([], True)], [([], True)]]


@pytest.mark.timeout(20)
def test_greedy_rows_match_one_prompt_at_a_time(tiny_kit, policy_for):
    """Left padding and the repeated KV cache change nothing: batched greedy == unbatched greedy."""
    model, vocab = policy_for(tiny_kit), tiny_kit.tokenizer.get_vocab()
    prompts = think_prompts(tiny_kit, 3)
    prompts[1] = prompts[1][:2] + prompts[1][1:]  # a longer prompt, so the batch is padded
    args = (vocab[THINK_END], tiny_kit.tokenizer.pad_token_id, {vocab["<pad>"]}, 5)
    batched = generate_thoughts(model, prompts, 2, *args)
    for prompt, group in zip(prompts, batched, strict=True):
        alone = generate_thoughts(model, [prompt], 1, *args)[0][0]
        assert group == [alone, alone]
