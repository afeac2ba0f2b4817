"""The `Generator` protocol and the HF backend of trie-constrained beam search.

Beam search over the item trie returns the top-K distinct items with their
exact log P(item | prompt): processors mask log-probabilities after the
softmax, so masking never renormalises the scores (DESIGN.md §8). Every
returned sequence is a complete trie path, hence a real catalog item.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from training.identifiers.trie import ItemTrie


class Generator(Protocol):
    def top_items(self, prompts: Sequence[list[int]], k: int) -> list[list[tuple[str, float]]]:
        """Per prompt: up to k (raw item id, log-prob) pairs, best first, distinct items."""
        ...


class TrieLogitsProcessor(LogitsProcessor):
    """Sets every token that leaves the trie to -inf. input_ids: [rows, prompt_len + generated]."""

    def __init__(self, trie: ItemTrie, prompt_len: int):
        self.trie = trie
        self.prompt_len = prompt_len
        self._cache: dict[tuple[int, ...], torch.Tensor] = {}

    def _allowed(self, prefix: tuple[int, ...]) -> torch.Tensor:
        if prefix not in self._cache:
            self._cache[prefix] = torch.tensor(self.trie.allowed_next(prefix), dtype=torch.long)
        return self._cache[prefix]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        mask = torch.full_like(scores, float("-inf"))
        for row, prefix in enumerate(input_ids[:, self.prompt_len:].tolist()):
            allowed = self._allowed(tuple(prefix)).to(scores.device)
            mask[row, allowed] = 0.0
        return scores + mask


def left_pad(prompts: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[n, max_len] input ids and attention mask, padded on the left."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p):] = torch.tensor(p)
        attention[row, width - len(p):] = 1
    return ids, attention


class TrieGeneratorBase:
    """What every trie-constrained generator holds. depth: max identifier length in tokens."""

    def __init__(self, model, trie: ItemTrie, depth: int, pad_id: int, beam_width: int = 20):
        self.model = model.eval()
        self.trie = trie
        self.depth = depth
        self.pad_id = pad_id
        self.beam_width = beam_width


class HFTrieBeamGenerator(TrieGeneratorBase):
    """Batched HF `generate` beam search, constrained to a fixed-depth item trie.

    depth 1 (atomic ids) is one forward pass and an exact top-k, the same
    answer beam search would give.
    """

    @torch.inference_mode()
    def top_items(self, prompts: Sequence[list[int]], k: int) -> list[list[tuple[str, float]]]:
        device = next(self.model.parameters()).device
        ids, attention = (t.to(device) for t in left_pad(prompts, self.pad_id))
        if self.depth == 1:
            return self._top_single_token(ids, attention, k)
        width = max(k, self.beam_width)
        out = self.model.generate(
            input_ids=ids, attention_mask=attention, num_beams=width, num_return_sequences=width,
            max_new_tokens=self.depth, min_new_tokens=self.depth, do_sample=False, length_penalty=0.0,
            early_stopping=True, logits_processor=LogitsProcessorList([TrieLogitsProcessor(self.trie, ids.shape[1])]),
            output_scores=True, return_dict_in_generate=True, pad_token_id=self.pad_id, eos_token_id=None,
        )
        generated = out.sequences[:, ids.shape[1]:].tolist()
        scores = out.sequences_scores.tolist()
        results = []
        for row in range(len(prompts)):
            pairs = []
            for j in range(row * width, (row + 1) * width):
                item = self.trie.item_at(generated[j])
                if item is not None and scores[j] > float("-inf"):
                    pairs.append((item, scores[j]))
            results.append(pairs[:k])
        return results

    def _top_single_token(self, ids, attention, k):
        logits = self.model(input_ids=ids, attention_mask=attention, logits_to_keep=1).logits[:, -1]
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        allowed = torch.tensor(self.trie.allowed_next(()), dtype=torch.long, device=logprobs.device)
        values, order = logprobs[:, allowed].topk(min(k, len(allowed)), dim=-1)
        tokens = allowed[order]
        return [
            [(self.trie.item_at((t,)), v) for t, v in zip(trow, vrow, strict=True)]
            for trow, vrow in zip(tokens.tolist(), values.tolist(), strict=True)
        ]
