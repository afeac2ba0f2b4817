"""Trie-constrained sampling through HF `generate` — the reference the rollout engines are measured against.

`do_sample` with the trie logits processor, temperature 1, no top-k/top-p, n return
sequences per prompt; per-token policy log-probs come from the raw (unprocessed) logits,
so the completions are the same kind as `TrieSampler`'s and vLLM's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import LogitsProcessorList

from training.identifiers.trie import ItemTrie
from training.padding import pad_rows
from training.rollout.generator import TrieLogitsProcessor, finished_length
from training.rollout.sampling import Completion


@torch.inference_mode()
def hf_generate_sample(model, trie: ItemTrie, prompts: Sequence[list[int]], n: int, depth: int, pad_id: int,
                       batch_size: int = 16) -> list[list[Completion]]:
    """Per prompt, n constrained samples at temperature 1, `batch_size` prompts per `generate` call."""
    groups: list[list[Completion]] = []
    for start in range(0, len(prompts), batch_size):
        groups += _sample_batch(model, trie, prompts[start:start + batch_size], n, depth, pad_id)
    return groups


def _sample_batch(model, trie, prompts, n, depth, pad_id) -> list[list[Completion]]:
    device = next(model.parameters()).device
    ids, attention = (t.to(device) for t in pad_rows(prompts, pad_id))
    processor = TrieLogitsProcessor(trie, ids.shape[1], n, stay_id=pad_id)
    out = model.generate(input_ids=ids, attention_mask=attention, do_sample=True, num_return_sequences=n,
                         temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=depth, min_new_tokens=depth,
                         logits_processor=LogitsProcessorList([processor]), output_logits=True,
                         return_dict_in_generate=True, pad_token_id=pad_id, eos_token_id=None)
    generated = out.sequences[:, ids.shape[1]:]
    logprobs = torch.stack([torch.log_softmax(step.float(), -1) for step in out.logits], dim=1)  # [rows, T, V]
    picked = logprobs.gather(2, generated[:, :, None]).squeeze(2).tolist()
    rows = []
    for tokens, lps in zip(generated.tolist(), picked, strict=True):
        length = finished_length(trie, tokens)
        if length is None:
            raise RuntimeError(f"HF generate sample left the trie: {tokens}")
        path = tuple(tokens[:length])
        children = tuple(len(trie.allowed_next(path[:j])) for j in range(length))
        rows.append(Completion(trie.item_at(path), path, tuple(lps[:length]), children))
    return [rows[p * n:(p + 1) * n] for p in range(len(prompts))]
