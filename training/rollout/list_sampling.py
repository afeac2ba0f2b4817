"""Trie-constrained sampling of recommendation *lists*: RecLLM-R1's action (recllm_r1.txt §3.3, §4.2).

The policy writes K distinct items one after another. Each prompt is encoded once and its KV
cache repeated for the n lists (as `TrieSampler` does for items); item after item, every level of
the identifier is drawn from softmax(logits / temperature) over the trie children of the row's
prefix, with the prefixes that lead only to items already in the row's list masked
(`ItemTrie.dead_prefixes`, `expand_candidates(..., dead)`), so the K items are distinct real items.
Items follow each other back to back, exactly as histories lay them out (training/prompts.py:
`<hist> item_1 ... item_n`, and the SFT windows `item_1 item_2 ...`), so a list continues the
prompt the way SFT taught; `separator_id` inserts a forced token between items for layouts that
need one (ours does not).

Recorded per token, as `Completion`: the policy log-prob at temperature 1 over the full vocabulary
(what the trainer recomputes with `completion_logprobs` on prompt + list) and the number of
candidates it was drawn from (a separator: 1). Variable-length ids (titles, EOS-terminated) finish
at different levels: a finished row feeds a masked pad (attention 0) and explicit position ids
count only attended tokens, so its cache equals the unpadded sequence's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from training.models.kv_cache import cache_of, with_cache
from training.padding import pad_rows
from training.rollout.beam import expand_candidates
from training.rollout.sampling import TrieSampler, _State, draw_from_candidates


@dataclass(frozen=True)
class ListCompletion:
    """One sampled list: its items in order, the token ids of the whole list, per-token log-probs and child counts."""

    items: tuple[str, ...]
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    n_children: tuple[int, ...]

    @property
    def logprob(self) -> float:
        """log P(list | prompt) under the policy (sum over tokens)."""
        return float(sum(self.logprobs))


class _Decoder:
    """Rows advancing one token per forward pass on a shared KV cache; `logits` predict each row's next token."""

    def __init__(self, model, prompts: Sequence[list[int]], n: int, pad_id: int):
        self.model, self.pad_id = model, pad_id
        device = next(model.parameters()).device
        ids, attention = (t.to(device) for t in pad_rows(prompts, pad_id, side="left"))
        positions = (attention.cumsum(dim=1) - 1).clamp(min=0)
        out = model(input_ids=ids, attention_mask=attention, position_ids=positions, use_cache=True,
                    logits_to_keep=1)
        rows = torch.arange(len(prompts), device=device).repeat_interleave(n)
        self.cache = cache_of(out)
        self.cache.reorder_cache(rows)
        self.attention = attention.index_select(0, rows)
        self.next_position = attention.sum(dim=1).index_select(0, rows)
        self.logits = out.logits[:, -1].float().index_select(0, rows)

    def feed(self, tokens: torch.Tensor) -> None:
        """tokens [rows]; a negative token (STAY: the row's item is finished) feeds a masked pad, logits kept."""
        real = tokens >= 0
        self.attention = torch.cat([self.attention, real.long()[:, None]], dim=1)
        out = self.model(input_ids=torch.where(real, tokens, self.pad_id)[:, None], attention_mask=self.attention,
                         position_ids=self.next_position[:, None], use_cache=True, **with_cache(self.model, self.cache))
        self.cache = cache_of(out)
        self.logits = torch.where(real[:, None], out.logits[:, -1].float(), self.logits)
        self.next_position = self.next_position + real.long()


@torch.inference_mode()
def sample_lists(sampler: TrieSampler, prompts: Sequence[list[int]], n_lists: int, list_length: int,
                 temperature: float = 1.0, generator: torch.Generator | None = None, separator_id: int | None = None,
                 top_k: int = 0) -> list[list[ListCompletion]]:
    """Per prompt, `n_lists` lists of `list_length` distinct catalog items (sampler: model, trie, depth, pad).

    Raises ValueError when the catalog holds fewer than `list_length` items, RuntimeError if a list
    item is not a real item or repeats one (impossible under the trie with dead-prefix masking).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not 1 <= list_length <= len(sampler.trie):
        raise ValueError(f"list_length must be in [1, {len(sampler.trie)}] (the catalog size), got {list_length}")
    trie, n_rows = sampler.trie, len(prompts) * n_lists
    decoder = _Decoder(sampler.model, prompts, n_lists, sampler.pad_id)
    device = decoder.logits.device
    items: list[list[str]] = [[] for _ in range(n_rows)]
    tokens_of = [[] for _ in range(n_rows)]
    logprobs_of = [[] for _ in range(n_rows)]
    children_of = [[] for _ in range(n_rows)]
    for position in range(list_length):
        dead = [trie.dead_prefixes(listed) for listed in items]
        item = _State.start(n_rows, trie)
        for level in range(sampler.depth):
            candidates = expand_candidates(trie, item.prefixes, sampler._children, dead).to(device)
            if bool((candidates == -1).all(dim=1).any()):
                raise RuntimeError(f"no live candidate at list position {position}, level {level}")
            picks = draw_from_candidates(decoder.logits, candidates, temperature, top_k, 1, generator)
            tokens = candidates.gather(1, picks).squeeze(1)
            item.add(tokens, torch.log_softmax(decoder.logits, dim=-1), candidates)
            if position < list_length - 1 or level < sampler.depth - 1:  # the list's last token feeds nothing
                decoder.feed(tokens)
        for row, prefix in enumerate(item.prefixes):
            drawn = trie.item_at(prefix)
            if drawn is None or drawn in items[row]:
                raise RuntimeError(f"list sampling drew {'a repeat of ' + drawn if drawn else 'no item'} at {prefix}")
            items[row].append(drawn)
            tokens_of[row] += prefix
            logprobs_of[row] += item.logprobs[row]
            children_of[row] += item.n_children[row]
        if separator_id is not None and position < list_length - 1:
            picked = torch.log_softmax(decoder.logits, dim=-1)[:, separator_id].tolist()
            for row in range(n_rows):
                tokens_of[row].append(separator_id)
                logprobs_of[row].append(picked[row])
                children_of[row].append(1)
            decoder.feed(torch.full((n_rows,), separator_id, device=device))
    lists = [ListCompletion(tuple(items[r]), tuple(tokens_of[r]), tuple(logprobs_of[r]), tuple(children_of[r]))
             for r in range(n_rows)]
    return [lists[p * n_lists:(p + 1) * n_lists] for p in range(len(prompts))]
