"""Free reasoning rollouts for R²ec (r2ec.txt §4.2.1, App. C): top-k sampling with temperature, no trie.

Every prompt ends with `<think>`. Each of the n rows per prompt draws one token per forward pass (the prompt is
encoded once, its KV cache repeated for the n rows) until it writes `stop_id` (`</think>`) or reaches
`max_new_tokens`. Tokens in `banned` (`<answer>`, `<pad>`, `<eos>`, ...) are never drawn, so the reasoning cannot
open the answer itself; the caller closes it. Position ids follow the attention mask, so a left-padded prompt
sees the same positions as in the right-padded teacher-forced forward of the update.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import torch

from training.models.kv_cache import cache_of, with_cache
from training.padding import pad_rows
from training.reasoning_sft.decode import Thought


def draw_top_k(logits: torch.Tensor, temperature: float, top_k: int,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """logits [rows, V] -> token ids [rows]: argmax when temperature <= 0, else a draw from
    softmax(logits / temperature) restricted to the top_k largest logits (top_k 0 or >= V: no cut)."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    scores = logits.float() / temperature
    if 0 < top_k < scores.shape[-1]:
        kth = scores.topk(top_k, dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    return torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=generator).squeeze(-1)


@torch.inference_mode()
def sample_reasoning(model, prompts: Sequence[list[int]], n: int, stop_id: int, pad_id: int,
                     banned: Collection[int] = (), max_new_tokens: int = 512, temperature: float = 1.5,
                     top_k: int = 200, generator: torch.Generator | None = None) -> list[list[Thought]]:
    """Per prompt, n (reasoning token ids without the stop token, closed by the policy) pairs; prompt-major rows."""
    if n < 1 or max_new_tokens < 0:
        raise ValueError(f"need n >= 1 and max_new_tokens >= 0, got n={n}, max_new_tokens={max_new_tokens}")
    device = next(model.parameters()).device
    written: list[list[int]] = [[] for _ in range(len(prompts) * n)]
    closed = [False] * len(written)
    if max_new_tokens == 0 or not prompts:
        return _group(written, closed, n)
    rows = torch.arange(len(prompts), device=device).repeat_interleave(n)
    ids, attention = (t.to(device) for t in pad_rows(prompts, pad_id, side="left"))
    positions = (attention.cumsum(dim=1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=attention, position_ids=positions, use_cache=True, logits_to_keep=1)
    cache, logits = cache_of(out), out.logits[:, -1].float().index_select(0, rows)
    cache.reorder_cache(rows)
    attention, position = attention.index_select(0, rows), positions[:, -1:].index_select(0, rows)
    ban = torch.tensor(sorted(banned), dtype=torch.long, device=device)
    for step in range(max_new_tokens):
        logits[:, ban] = float("-inf")
        tokens = draw_top_k(logits, temperature, top_k, generator)
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
        position = position + 1
        out = model(input_ids=tokens[:, None], attention_mask=attention, position_ids=position, use_cache=True,
                    **with_cache(model, cache))
        cache, logits = cache_of(out), out.logits[:, -1].float()
    return _group(written, closed, n)


def _group(written: list[list[int]], closed: list[bool], n: int) -> list[list[Thought]]:
    pairs = list(zip(written, closed, strict=True))
    return [pairs[i:i + n] for i in range(0, len(pairs), n)]
