"""Stage 1 of reasoning-mode decoding: write the chain of thought (gream.txt §3 "Sequential Reasoning
Recommendation", §6.1.2: Pass@K sampled at temperature 0.7, top-p 0.9).

Every prompt ends with `<think>`. Each of the n CoTs per prompt is extended one token per forward pass
(the prompt is encoded once; its KV cache is repeated for the n CoTs) until it writes `</think>` or reaches
`max_new_tokens`, where the caller closes it (`</think>` forced). Tokens in `banned` (structure tokens other
than `</think>`: `<answer>`, `<pad>`, `<unk>`, ...) are never written, so a CoT cannot open the answer itself.
temperature 0 = greedy; otherwise softmax(logits / temperature) cut to the top-p nucleus.
Stage 2 (the trie-constrained answer) lives in `recommender.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import torch

from training.models.kv_cache import cache_of, with_cache
from training.padding import pad_rows

Thought = tuple[list[int], bool]  # (CoT token ids without </think>, closed by the policy itself)


def pick_next_tokens(logits: torch.Tensor, temperature: float, top_p: float,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """logits [rows, V] -> token ids [rows]: argmax when temperature <= 0, else a draw from the top-p nucleus
    of softmax(logits / temperature) (the smallest set of most likely tokens whose mass reaches top_p)."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        before = sorted_probs.cumsum(dim=-1) - sorted_probs  # mass of the more likely tokens
        sorted_probs = sorted_probs.masked_fill(before >= top_p, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.inference_mode()
def generate_thoughts(model, prompts: Sequence[list[int]], n: int, think_end_id: int, pad_id: int,
                      banned: Collection[int] = (), max_new_tokens: int = 320, temperature: float = 0.0,
                      top_p: float = 1.0, generator: torch.Generator | None = None) -> list[list[Thought]]:
    """Per prompt, n (CoT token ids without `</think>`, closed) pairs; closed False = cut at max_new_tokens.

    Rows are prompt-major: row r = prompt r // n, CoT r % n.
    """
    return sample_thoughts(model, prompts, n, think_end_id, pad_id, banned, max_new_tokens,
                           lambda logits: pick_next_tokens(logits, temperature, top_p, generator))


@torch.inference_mode()
def sample_thoughts(model, prompts: Sequence[list[int]], n: int, stop_id: int, pad_id: int,
                    banned: Collection[int], max_new_tokens: int, draw: Callable[[torch.Tensor], torch.Tensor],
                    mask_positions: bool = False) -> list[list[Thought]]:
    """The KV-cached loop behind every free-text decoder: the prompts encoded once (left padded), their cache
    repeated n times, then one `draw(logits [rows, V]) -> token ids [rows]` per step, `banned` never drawn, until
    each row writes `stop_id` or `max_new_tokens` are written. mask_positions: position ids follow the attention
    mask (a left-padded prompt sees the positions of its unpadded forward); else the model's default positions."""
    if n < 1 or max_new_tokens < 0:
        raise ValueError(f"need n >= 1 and max_new_tokens >= 0, got n={n}, max_new_tokens={max_new_tokens}")
    device = next(model.parameters()).device
    rows = torch.arange(len(prompts), device=device).repeat_interleave(n)
    written: list[list[int]] = [[] for _ in range(len(prompts) * n)]
    closed = [False] * len(written)
    if max_new_tokens == 0 or not prompts:
        return _group(written, closed, n)
    ids, attention = (t.to(device) for t in pad_rows(prompts, pad_id, side="left"))
    positions = (attention.cumsum(dim=1) - 1).clamp(min=0) if mask_positions else None
    out = model(input_ids=ids, attention_mask=attention, use_cache=True, logits_to_keep=1,
                **({"position_ids": positions} if mask_positions else {}))
    cache, logits = cache_of(out), out.logits[:, -1].float().index_select(0, rows)
    cache.reorder_cache(rows)
    attention = attention.index_select(0, rows)
    position = positions[:, -1:].index_select(0, rows) if mask_positions else None
    ban = torch.tensor(sorted(banned), dtype=torch.long, device=device)
    for step in range(max_new_tokens):
        logits[:, ban] = float("-inf")
        tokens = draw(logits)
        for row, token in enumerate(tokens.tolist()):
            if closed[row]:
                continue
            if token == stop_id:
                closed[row] = True
            else:
                written[row].append(token)
        if all(closed) or step == max_new_tokens - 1:
            break
        attention = torch.cat([attention, torch.ones_like(attention[:, :1])], dim=1)
        extra = {}
        if mask_positions:
            position = position + 1
            extra["position_ids"] = position
        out = model(input_ids=tokens[:, None], attention_mask=attention, use_cache=True,
                    **with_cache(model, cache), **extra)
        cache, logits = cache_of(out), out.logits[:, -1].float()
    return _group(written, closed, n)


def _group(written: list[list[int]], closed: list[bool], n: int) -> list[list[Thought]]:
    pairs = list(zip(written, closed, strict=True))
    return [pairs[i:i + n] for i in range(0, len(pairs), n)]
