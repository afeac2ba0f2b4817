"""Teacher-forced log-probs of completions under the policy (with gradients), for the RL update.

An RL step scores many completions of the same prompt (a GRPO group, SimPO's target and wrong items). For a plain
Qwen3 policy (`lean_supported`) each distinct prompt runs once and its completions attend to its keys
(`LeanQwen3.extend`); otherwise every prompt + completion runs as its own sequence through transformers. Both give
the same log-probs and gradients to float rounding (tests/training/rollout/test_scoring.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from training.models.lean_decoder import LeanQwen3, lean_supported
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
    at the positions that predict completion tokens (transformers path).
    """
    if lean_supported(model) and any(completions):
        return shared_prompt_logprobs(model, prompts, completions, pad_id)
    return per_sequence_logprobs(model, prompts, completions, pad_id)


def per_sequence_logprobs(model, prompts: Sequence[list[int]], completions: Sequence[Sequence[int]],
                          pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`completion_logprobs` through the transformers model, one right-padded sequence per completion."""
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


def shared_prompt_logprobs(model, prompts: Sequence[list[int]], completions: Sequence[Sequence[int]],
                           pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`completion_logprobs` with one forward per distinct prompt (Qwen3 policies, see the module docstring)."""
    device = next(model.parameters()).device
    slots: dict[tuple[int, ...], list[int]] = {}
    for row, prompt in enumerate(prompts):
        slots.setdefault(tuple(prompt), []).append(row)
    unique, groups = list(slots), list(slots.values())
    width, length = max(map(len, groups)), max(len(c) for c in completions)
    tokens = torch.full((len(unique), width, length), pad_id, dtype=torch.long)
    for p, rows in enumerate(groups):
        for w, row in enumerate(rows):
            tokens[p, w, :len(completions[row])] = torch.tensor(list(completions[row]), dtype=torch.long)
    tokens = tokens.to(device)
    ids, valid = pad_rows([list(u) for u in unique], pad_id, side="left")
    ids, valid = ids.to(device), valid.to(device).bool()
    lean = LeanQwen3(model)
    first, cache = lean.prefill(ids, valid)  # [n, V]: predicts each completion's token 0
    logits = first[:, None, None].expand(-1, width, 1, -1)
    if length > 1:  # position t of the continuation predicts token t + 1
        logits = torch.cat([logits, lean.extend(tokens[:, :, :-1], cache)], dim=2)
    picked = torch.log_softmax(logits.float(), dim=-1).gather(-1, tokens[..., None]).squeeze(-1)  # [n, W, T]
    where = torch.tensor([[p, w] for p, rows in enumerate(groups) for w, _ in enumerate(rows)], device=device)
    order = torch.tensor([row for rows in groups for row in rows], device=device)
    out = torch.zeros(len(prompts), length, device=device).index_copy(0, order, picked[where[:, 0], where[:, 1]])
    mask = pad_rows([[1] * len(c) for c in completions], 0, side="right", length=length)[1].float().to(device)
    return out * mask, mask
