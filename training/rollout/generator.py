"""The `Generator` protocol and the HF backend of trie-constrained beam search.

Beam search over the item trie returns the top-K distinct items with their
exact log P(item | prompt): processors mask log-probabilities after the
softmax, so masking never renormalises the scores (DESIGN.md §8). Every
returned sequence is a complete trie path, hence a real catalog item.
Excluded (seen) items are masked during the search, not filtered after it:
see `TrieBeamSearch.top_items` for why exactly min(k, #unseen items) come back.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from training.identifiers.trie import ItemTrie
from training.padding import pad_rows

Prefix = tuple[int, ...]
# HF beam search marks impossible hypotheses with a finite -1e9 (padding beams, running beams it
# could not finish); no real log P(item) comes anywhere near this.
HF_IMPOSSIBLE = -1.0e8


class Generator(Protocol):
    def top_items(
        self, prompts: Sequence[list[int]], k: int, exclude: Sequence[Collection[str]] | None = None
    ) -> list[list[tuple[str, float]]]:
        """Per prompt: up to k (raw item id, log-prob) pairs, best first, distinct items.

        exclude: per prompt, raw item ids never to return; exactly k pairs come back whenever the
        trie holds >= k items outside the prompt's exclusion set (all of them otherwise).
        """
        ...


def finished_length(trie: ItemTrie, generated: Sequence[int]) -> int | None:
    """Length of the first prefix of `generated` that is a whole item with no continuation, else None."""
    for length in range(1, len(generated) + 1):
        prefix = generated[:length]
        if trie.item_at(prefix) is not None and not trie.allowed_next(prefix):
            return length
    return None


class TrieLogitsProcessor(LogitsProcessor):
    """Keeps only trie continuations of each row's generated prefix; everything else -> -inf.

    input_ids: [prompts * num_beams, prompt_len + generated]; row = prompt * num_beams + beam.
    dead: per prompt, prefixes under which every item is excluded (ItemTrie.dead_prefixes).
    A row whose item is finished (variable-length ids) may only emit `stay_id`, at log-prob 0,
    so its score stays log P(item).
    """

    def __init__(self, trie: ItemTrie, prompt_len: int, num_beams: int = 1,
                 dead: Sequence[frozenset[Prefix]] | None = None, stay_id: int = 0):
        self.trie = trie
        self.prompt_len = prompt_len
        self.num_beams = num_beams
        self.dead = dead
        self.stay_id = stay_id
        self._cache: dict[Prefix, list[int]] = {}
        self._tensors: dict[Prefix, torch.Tensor] = {}
        self._finished: dict[Prefix, bool] = {(): False}

    def _is_finished(self, prefix: Prefix) -> bool:
        if prefix not in self._finished:
            self._finished[prefix] = self._is_finished(prefix[:-1]) or (
                self.trie.item_at(prefix) is not None and not self._allowed(prefix))
        return self._finished[prefix]

    def _allowed(self, prefix: Prefix) -> list[int]:
        if prefix not in self._cache:
            self._cache[prefix] = self.trie.allowed_next(prefix)
        return self._cache[prefix]

    def _live(self, prefix: Prefix, prompt: int) -> torch.Tensor:
        """Allowed next tokens of `prefix` for this prompt (excluded-only branches removed): LongTensor [m]."""
        dead = self.dead[prompt] if self.dead is not None else None
        if not dead:
            if prefix not in self._tensors:
                self._tensors[prefix] = torch.tensor(self._allowed(prefix), dtype=torch.long)
            return self._tensors[prefix]
        return torch.tensor([t for t in self._allowed(prefix) if prefix + (t,) not in dead], dtype=torch.long)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        out = torch.full_like(scores, float("-inf"))
        for row, generated in enumerate(input_ids[:, self.prompt_len:].tolist()):
            prefix = tuple(generated)
            if self._is_finished(prefix):
                out[row, self.stay_id] = 0.0
                continue
            live = self._live(prefix, row // self.num_beams).to(scores.device)
            out[row, live] = scores[row, live]
        return out


class TrieGeneratorBase:
    """What every trie-constrained generator holds. depth: max identifier length in tokens."""

    def __init__(self, model, trie: ItemTrie, depth: int, pad_id: int, beam_width: int = 20):
        self.model = model.eval()
        self.trie = trie
        self.depth = depth
        self.pad_id = pad_id
        self.beam_width = beam_width

    def width_for(self, k: int) -> int:
        """Beams per prompt: max(k, beam_width), capped at the number of items (more can't be live)."""
        return max(1, min(max(k, self.beam_width), len(self.trie)))

    def dead_prefixes(self, exclude: Sequence[Collection[str]] | None, n: int) -> list[frozenset[Prefix]] | None:
        """Per prompt, the trie prefixes to mask; None when no prompt excludes anything in the trie."""
        if exclude is None:
            return None
        if len(exclude) != n:
            raise ValueError(f"exclude has {len(exclude)} sets for {n} prompts")
        dead = [self.trie.dead_prefixes(e) if e else frozenset() for e in exclude]
        return dead if any(dead) else None


class HFTrieBeamGenerator(TrieGeneratorBase):
    """Batched HF `generate` beam search, constrained to the item trie.

    depth 1 (atomic ids) is one forward pass and an exact top-k, the same
    answer beam search would give.
    """

    @torch.inference_mode()
    def top_items(
        self, prompts: Sequence[list[int]], k: int, exclude: Sequence[Collection[str]] | None = None
    ) -> list[list[tuple[str, float]]]:
        device = next(self.model.parameters()).device
        ids, attention = (t.to(device) for t in pad_rows(prompts, self.pad_id))
        dead = self.dead_prefixes(exclude, len(prompts))
        if self.depth == 1:
            return self._top_single_token(ids, attention, k, dead)
        width = self.width_for(k)
        processor = TrieLogitsProcessor(self.trie, ids.shape[1], width, dead, stay_id=self.pad_id)
        out = self.model.generate(
            input_ids=ids, attention_mask=attention, num_beams=width, num_return_sequences=width,
            max_new_tokens=self.depth, min_new_tokens=self.depth, do_sample=False, length_penalty=0.0,
            early_stopping=True, logits_processor=LogitsProcessorList([processor]),
            output_scores=True, return_dict_in_generate=True, pad_token_id=self.pad_id, eos_token_id=None,
        )
        generated = out.sequences[:, ids.shape[1]:].tolist()
        scores = out.sequences_scores.tolist()
        results = []
        for row in range(len(prompts)):
            pairs = []
            for j in range(row * width, (row + 1) * width):
                length = finished_length(self.trie, generated[j])
                if length is not None and scores[j] > HF_IMPOSSIBLE:
                    pairs.append((self.trie.item_at(generated[j][:length]), scores[j]))
            results.append(pairs[:k])
        return results

    def _top_single_token(self, ids, attention, k, dead):
        """ids, attention: [n, prompt_len] -> per prompt, top-k root tokens as items (dead ones masked)."""
        logits = self.model(input_ids=ids, attention_mask=attention, logits_to_keep=1).logits[:, -1]
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        allowed = self.trie.allowed_next(())
        candidates = logprobs[:, torch.tensor(allowed, dtype=torch.long, device=logprobs.device)]
        if dead is not None:
            masked = torch.tensor([[(t,) in d for t in allowed] for d in dead], device=logprobs.device)
            candidates = candidates.masked_fill(masked, float("-inf"))
        values, order = candidates.topk(min(k, len(allowed)), dim=-1)
        return [
            [(self.trie.item_at((allowed[j],)), v) for j, v in zip(jrow, vrow, strict=True) if v > float("-inf")]
            for jrow, vrow in zip(order.tolist(), values.tolist(), strict=True)
        ]
