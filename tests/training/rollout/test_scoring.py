"""Teacher-forced completion scores (training/rollout/scoring.py) against one plain forward per sequence."""

from __future__ import annotations

import pytest
import torch

from training.rollout.scoring import completion_entropies, completion_logprobs

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.timeout(30)
def test_logprobs_and_entropies_match_a_plain_forward_of_each_sequence(tiny_policy, history_prompts):
    model, tokenizer, _ = tiny_policy
    completions = [[5, 6, 7], [8], [9, 10]]
    pad = tokenizer.pad_token_id
    logprobs, mask = completion_logprobs(model, history_prompts, completions, pad)
    entropies = completion_entropies(model, history_prompts, completions, pad)
    assert entropies.shape == logprobs.shape == mask.shape == (3, 3)
    for row, (prompt, completion) in enumerate(zip(history_prompts, completions, strict=True)):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prompt + completion])).logits[0].float()
        log_p = torch.log_softmax(logits, dim=-1)
        for j, token in enumerate(completion):
            position = len(prompt) - 1 + j
            assert logprobs[row, j].item() == pytest.approx(log_p[position, token].item(), abs=1e-4)
            by_hand = -(log_p[position].exp() * log_p[position]).sum().item()
            assert entropies[row, j].item() == pytest.approx(by_hand, abs=1e-4)
        assert mask[row].tolist() == [1.0] * len(completion) + [0.0] * (3 - len(completion))
        assert entropies[row, len(completion):].abs().sum().item() == 0.0


@pytest.mark.timeout(60)
def test_shared_prompt_scoring_equals_one_sequence_per_completion_values_and_gradients(tiny_policy,
                                                                                        history_prompts):
    """A GRPO group / SimPO pairs: several completions per prompt, of different lengths, prompts in any order."""
    from training.models.lean_decoder import lean_supported
    from training.rollout.scoring import per_sequence_logprobs, shared_prompt_logprobs

    model, tokenizer, _ = tiny_policy
    assert lean_supported(model)
    a, b, c = history_prompts
    prompts = [a, b, a, c, a, b]
    completions = [[5, 6, 7], [8], [9, 10], [11, 12, 13], [5, 6, 8], [14, 15]]
    pad = tokenizer.pad_token_id
    results = []
    for score in (per_sequence_logprobs, shared_prompt_logprobs):
        model.zero_grad()
        logprobs, mask = score(model, prompts, completions, pad)
        (logprobs * torch.arange(1.0, 4.0)).sum().backward()  # weights per position: gradients of every slot
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        results.append((logprobs.detach(), mask, grads))
    (ref, ref_mask, ref_grads), (got, got_mask, got_grads) = results
    assert torch.equal(ref_mask, got_mask)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-4)
    assert len(got_grads) == len(ref_grads) > 0
    for g, r in zip(got_grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-3)
