"""Batched trie-constrained beam search with a KV cache (DESIGN.md §8: "a fair rival").

All prompts x beams advance one identifier level per forward pass; the prompt
is encoded once and its KV cache is repeated per beam and re-indexed as beams
are chosen. Scores are exact log P(item | prompt): log-softmax over the whole
vocabulary, then only trie children are candidates (no renormalisation).

Seen-item exclusion happens inside the search: per prompt, the trie's
`dead_prefixes(excluded)` (prefixes under which every item is excluded) are
masked as candidates at every level, so no beam is spent on them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import torch

from training.identifiers.trie import ItemTrie
from training.models.kv_cache import cache_of, with_cache
from training.models.lean_decoder import LeanQwen3, lean_supported
from training.padding import pad_rows
from training.rollout.generator import TrieGeneratorBase

STAY = -2  # a finished item (variable-length ids) keeps its place at no cost


def expand_candidates(
    trie: ItemTrie, prefixes: Sequence[tuple[int, ...]], cache: dict,
    dead: Sequence[frozenset[tuple[int, ...]]] | None = None,
) -> torch.Tensor:
    """Children token ids of every prefix, padded with -1: [n_prefixes, max_children].

    A complete item's prefix has the single candidate STAY (its path is finished).
    cache: prefix -> children, shared by all rows; dead: per row, prefixes to drop
    (a child is dropped when prefix + (token,) is dead, STAY when the prefix itself is).
    """
    children, dead_children = [], {}
    for row, prefix in enumerate(prefixes):
        kids = cache.get(prefix)
        if kids is None:
            kids = cache[prefix] = trie.allowed_next(prefix) or ([STAY] if trie.item_at(prefix) else [])
        row_dead = dead[row] if dead is not None else None
        if row_dead and kids:
            if kids[0] == STAY:
                kids = [] if prefix in row_dead else kids
            else:  # rows of one prompt share its dead set: group it by parent once per call
                by_parent = dead_children.get(id(row_dead))
                if by_parent is None:
                    by_parent = dead_children[id(row_dead)] = _group_by_parent(row_dead)
                blocked = by_parent.get(prefix)
                kids = [t for t in kids if t not in blocked] if blocked else kids
        children.append(kids)
    width = max(1, max(len(c) for c in children))
    return torch.tensor([c + [-1] * (width - len(c)) for c in children], dtype=torch.long)


def _group_by_parent(dead: frozenset[tuple[int, ...]]) -> dict[tuple[int, ...], set[int]]:
    """Dead prefixes as parent prefix -> the last tokens that are dead under it."""
    grouped: dict[tuple[int, ...], set[int]] = {}
    for path in dead:
        grouped.setdefault(path[:-1], set()).add(path[-1])
    return grouped


def select_beams(
    logprobs: torch.Tensor, beam_scores: torch.Tensor, candidates: torch.Tensor, n_prompts: int, width: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One beam step.

    logprobs: [n_prompts * beams, V]; beam_scores: [n_prompts * beams];
    candidates: [n_prompts * beams, C] token ids (-1 = none, STAY = finished, adds 0).
    Returns (parent row [n_prompts, width], token [n_prompts, width], score [n_prompts, width]),
    parent rows indexing the flat [n_prompts * beams] axis.
    """
    rows, n_cand = candidates.shape
    beams = rows // n_prompts
    gathered = logprobs.gather(1, candidates.clamp(min=0)).masked_fill(candidates == STAY, 0.0)
    total = beam_scores[:, None] + gathered
    total = total.masked_fill(candidates == -1, float("-inf")).view(n_prompts, beams * n_cand)
    k = min(width, total.shape[1])
    scores, flat = total.topk(k, dim=1)
    parent_local = flat // n_cand
    parent = parent_local + torch.arange(n_prompts, device=flat.device)[:, None] * beams
    tokens = candidates.view(n_prompts, beams * n_cand).gather(1, flat)
    return parent, tokens, scores


class TrieBeamSearch(TrieGeneratorBase):
    """Top-k distinct items per prompt (variable-length ids finish early and keep their score).

    With exclusions, exactly min(width, N) distinct items come back (N = non-excluded items in the
    trie), so k of them whenever N >= k. Call a prefix live when some non-excluded item lies under
    it; dead candidates are -1, so only live ones get a finite score. Let F_l be the number of
    distinct truncations of non-excluded items to l tokens (F_0 = 1, F_l grows with l,
    F_depth = N). Distinct beams hold distinct prefixes, and a live beam has a live candidate
    (a live child, or STAY once its item is whole). Induction: if level l keeps min(width, F_l)
    live beams, either they are all F_l truncations, whose live candidates are all F_l+1
    truncations, or they are width beams with >= width distinct live candidates; level l + 1
    keeps min(width, F_l+1) either way. After `depth` levels a live prefix is a whole item.
    (Assumes no item's ids are a proper prefix of another's: `build_item_trie` appends EOS.)
    """

    def __init__(self, model, trie: ItemTrie, depth: int, pad_id: int, beam_width: int = 20, lean: bool = True):
        super().__init__(model, trie, depth, pad_id, beam_width)
        self._children: dict[tuple[int, ...], list[int]] = {}
        self.lean = lean  # the shared-prompt forward (training/models/lean_decoder.py) where the model allows it

    @torch.inference_mode()
    def top_items(
        self, prompts: Sequence[list[int]], k: int, exclude: Sequence[Collection[str]] | None = None
    ) -> list[list[tuple[str, float]]]:
        """prompts: n token-id lists; exclude: per prompt, raw ids never to return.

        Returns per prompt min(k, #non-excluded items) (raw item id, log P) pairs, best first, distinct.
        """
        width = self.width_for(k)
        device = next(self.model.parameters()).device
        ids, attention = (t.to(device) for t in pad_rows(prompts, self.pad_id))
        n = len(prompts)
        dead = self.dead_prefixes(exclude, n)
        forward = _LeanForward(self.model) if self.lean and lean_supported(self.model) else _HFForward(self.model)
        logprobs = forward.prefill(ids, attention)
        prefixes: list[tuple[int, ...]] = [()] * n
        beam_scores = torch.zeros(n, device=device)
        for level in range(self.depth):
            row_dead = None if dead is None else [d for d in dead for _ in range(len(prefixes) // n)]
            candidates = expand_candidates(self.trie, prefixes, self._children, row_dead).to(device)
            parent, tokens, scores = select_beams(logprobs, beam_scores, candidates, n, width)
            flat_parent, flat_tokens = parent.reshape(-1), tokens.reshape(-1)
            prefixes = [prefixes[p] + (t,) if t >= 0 else prefixes[p]
                        for p, t in zip(flat_parent.tolist(), flat_tokens.tolist(), strict=True)]
            beam_scores = scores.reshape(-1)
            if level == self.depth - 1:
                break
            logprobs = forward.step(flat_parent, torch.where(flat_tokens >= 0, flat_tokens, self.pad_id))
        return self._collect(prefixes, beam_scores, n, k)

    def _collect(self, prefixes, scores: torch.Tensor, n: int, k: int) -> list[list[tuple[str, float]]]:
        beams = len(prefixes) // n
        values = scores.tolist()
        results = []
        for row in range(n):
            pairs = []
            for j in range(row * beams, (row + 1) * beams):
                item = self.trie.item_at(prefixes[j]) if values[j] > float("-inf") else None
                if item is not None:
                    pairs.append((item, values[j]))
            results.append(pairs[:k])
        return results


class _HFForward:
    """The transformers model with its KV cache: the prompt's cache repeated per beam and re-indexed per level."""

    def __init__(self, model):
        self.model, self.cache, self.attention = model, None, None

    def prefill(self, ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=ids, attention_mask=attention, use_cache=True, logits_to_keep=1)
        self.cache, self.attention = cache_of(out), attention
        return torch.log_softmax(out.logits[:, -1].float(), dim=-1)

    def step(self, parent: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """parent: [rows] the beam each row continues; tokens: [rows] its new token -> log-probs [rows, V]."""
        self.cache.reorder_cache(parent)
        ones = torch.ones((len(parent), 1), dtype=torch.long, device=parent.device)
        self.attention = torch.cat([self.attention.index_select(0, parent), ones], dim=1)
        out = self.model(input_ids=tokens[:, None], attention_mask=self.attention,
                         **with_cache(self.model, self.cache), use_cache=True)
        self.cache = cache_of(out)
        return torch.log_softmax(out.logits[:, -1].float(), dim=-1)


class _LeanForward:
    """`LeanQwen3`: each prompt's cache kept once, beams carry only their generated tokens."""

    def __init__(self, model):
        self.lean, self.prompt, self.beams = LeanQwen3(model), None, None

    def prefill(self, ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        logits, self.prompt = self.lean.prefill(ids, attention.bool())
        return torch.log_softmax(logits.float(), dim=-1)

    def step(self, parent: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        beams = None if self.beams is None else self.beams.reorder(parent)
        logits, self.beams = self.lean.step(tokens, self.prompt, beams)
        return torch.log_softmax(logits.float(), dim=-1)
