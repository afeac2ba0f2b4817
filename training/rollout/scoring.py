"""Teacher-forced log-probs of completions under the policy (with gradients), for the RL update."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from training.padding import pad_rows


def sequence_hidden_states(model, prompts: Sequence[list[int]], completions: Sequence[Sequence[int]],
                           pad_id: int) -> torch.Tensor:
    """Last hidden states [N, L, d] of the right-padded sequences prompts[i] + completions[i] (no LM head)."""
    rows = [list(p) + list(c) for p, c in zip(prompts, completions, strict=True)]
    device = next(model.parameters()).device
    ids, attention = (t.to(device) for t in pad_rows(rows, pad_id, side="right"))
    return model.model(input_ids=ids, attention_mask=attention).last_hidden_state


def completion_logprobs(model, prompts: Sequence[list[int]], completions: Sequence[Sequence[int]],
                        pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log P(completion token | prompt, previous tokens), full-vocabulary softmax.

    prompts[i] + completions[i] is one sequence. Returns (logprobs [N, T], mask [N, T]) with
    T = the longest completion; mask 1 where a completion token exists. The LM head runs only
    at the positions that predict completion tokens.
    """
    hidden = sequence_hidden_states(model, prompts, completions, pad_id)
    device = hidden.device
    width = max(len(c) for c in completions)
    row_idx, pos_idx, tok_idx, slot = [], [], [], []
    for i, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        for j, token in enumerate(c):
            row_idx.append(i)
            pos_idx.append(len(p) - 1 + j)
            tok_idx.append(token)
            slot.append(j)
    row_t = torch.tensor(row_idx, device=device)
    logits = model.lm_head(hidden[row_t, torch.tensor(pos_idx, device=device)]).float()
    picked = torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(tok_idx, device=device)[:, None]).squeeze(1)
    out = torch.zeros(len(prompts), width, device=device)
    mask = torch.zeros(len(prompts), width, device=device)
    slot_t = torch.tensor(slot, device=device)
    out = out.index_put((row_t, slot_t), picked)
    mask[row_t, slot_t] = 1.0
    return out, mask


@torch.no_grad()
def completion_entropies(model, prompts: Sequence[list[int]], completions: Sequence[Sequence[int]],
                         pad_id: int) -> torch.Tensor:
    """Per-token entropy E_t = -Σ_v π(v) log π(v) of the policy at each completion position (rporec.txt Eq. 11),
    [N, T] aligned with `completion_logprobs` (0 where no completion token exists). No gradient."""
    from training.rewards.rporec import compute_token_entropy

    hidden = sequence_hidden_states(model, prompts, completions, pad_id)
    out = torch.zeros(len(prompts), max(len(c) for c in completions), device=hidden.device)
    for i, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        if c:
            out[i, :len(c)] = compute_token_entropy(model.lm_head(hidden[i, len(p) - 1:len(p) - 1 + len(c)]))
    return out
