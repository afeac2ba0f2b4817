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

from training.reasoning_sft.decode import Thought, sample_thoughts


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
    return sample_thoughts(model, prompts, n, stop_id, pad_id, banned, max_new_tokens,
                           lambda logits: draw_top_k(logits, temperature, top_k, generator), mask_positions=True)
