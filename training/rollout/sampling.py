"""Trie-constrained ancestral sampling with a KV cache: RL rollouts whose every sample is a real item.

Each prompt is encoded once; its KV cache is repeated for the n samples. At each
identifier level the candidates are the trie children of the sample's prefix;
the next token is drawn from softmax(logits / temperature) restricted to them
(optionally to their top_k). Recorded per token: the *policy* log-prob, i.e. the
full-vocabulary log-softmax at temperature 1 (the same quantity the trainer
recomputes, so ratios start at 1), and the number of children of the prefix it
was drawn from (input of the certainty-aware mask, riser.txt Eq. 6).
The first level of all n samples of a prompt shares one distribution, so it is
drawn with one `multinomial` per prompt: hundreds of samples of atomic ids cost
one forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from training.identifiers.trie import ItemTrie
from training.models.kv_cache import cache_of, with_cache
from training.padding import pad_rows
from training.rollout.beam import STAY, expand_candidates


@dataclass(frozen=True)
class Completion:
    """One sampled item: its token ids, per-token policy log-probs and per-token child counts."""

    item: str
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    n_children: tuple[int, ...]

    @property
    def logprob(self) -> float:
        """log P(item | prompt) under the policy (sum over tokens)."""
        return float(sum(self.logprobs))


def draw_from_candidates(logits: torch.Tensor, candidates: torch.Tensor, temperature: float, top_k: int,
                         n: int, generator: torch.Generator | None) -> torch.Tensor:
    """Sample `n` candidate positions per row.

    logits: [rows, V]; candidates: [rows, C] token ids (-1 = none, STAY = finished -> logit 0).
    Returns positions [rows, n] into the candidate axis.
    """
    scores = logits.gather(1, candidates.clamp(min=0)).float() / temperature
    scores = scores.masked_fill(candidates == STAY, 0.0).masked_fill(candidates == -1, float("-inf"))
    if 0 < top_k < scores.shape[1]:
        kth = scores.topk(top_k, dim=1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    probs = torch.softmax(scores, dim=1)
    return torch.multinomial(probs, n, replacement=True, generator=generator)


class TrieSampler:
    """Constrained sampling of n items per prompt. depth: max identifier length in tokens."""

    def __init__(self, model, trie: ItemTrie, depth: int, pad_id: int):
        self.model = model
        self.trie = trie
        self.depth = depth
        self.pad_id = pad_id
        self._children: dict[tuple[int, ...], list[int]] = {}

    @torch.inference_mode()
    def sample(self, prompts: Sequence[list[int]], n: int, temperature: float = 1.0, top_k: int = 0,
               generator: torch.Generator | None = None) -> list[list[Completion]]:
        """Per prompt, n completions (items may repeat: dedupe is the caller's policy)."""
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        device = next(self.model.parameters()).device
        ids, attention = (t.to(device) for t in pad_rows(prompts, self.pad_id, side="left"))
        out = self.model(input_ids=ids, attention_mask=attention, use_cache=True, logits_to_keep=1)
        logits, cache = out.logits[:, -1].float(), cache_of(out)
        n_prompts = len(prompts)
        root = expand_candidates(self.trie, [()] * n_prompts, self._children).to(device)
        picks = draw_from_candidates(logits, root, temperature, top_k, n, generator)  # [P, n]
        rows = torch.arange(n_prompts, device=device).repeat_interleave(n)
        tokens = root.gather(1, picks).reshape(-1)
        state = _State.start(n_prompts * n, self.trie)
        state.add(tokens, torch.log_softmax(logits, -1)[rows], root[rows])
        cache.reorder_cache(rows)
        attention = attention.index_select(0, rows)
        for _ in range(1, self.depth):
            attention = torch.cat([attention, torch.ones_like(attention[:, :1])], dim=1)
            step_tokens = torch.where(tokens >= 0, tokens, self.pad_id)[:, None]
            out = self.model(input_ids=step_tokens, attention_mask=attention, use_cache=True,
                             **with_cache(self.model, cache))
            logits, cache = out.logits[:, -1].float(), cache_of(out)
            candidates = expand_candidates(self.trie, state.prefixes, self._children).to(device)
            picks = draw_from_candidates(logits, candidates, temperature, top_k, 1, generator)
            tokens = candidates.gather(1, picks).reshape(-1)
            state.add(tokens, torch.log_softmax(logits, -1), candidates)
        return state.completions(n_prompts, n)


@dataclass
class _State:
    """Per sample row: the prefix so far, its token log-probs and child counts."""

    trie: ItemTrie
    prefixes: list[tuple[int, ...]]
    logprobs: list[list[float]]
    n_children: list[list[int]]

    @classmethod
    def start(cls, rows: int, trie: ItemTrie) -> _State:
        return cls(trie, [()] * rows, [[] for _ in range(rows)], [[] for _ in range(rows)])

    def add(self, tokens: torch.Tensor, logprobs: torch.Tensor, candidates: torch.Tensor) -> None:
        """tokens: [rows] (STAY = finished); logprobs: [rows, V]; candidates: [rows, C]."""
        counts = ((candidates >= 0).sum(dim=1)).tolist()
        picked = logprobs.gather(1, tokens.clamp(min=0)[:, None]).squeeze(1).tolist()
        for row, token in enumerate(tokens.tolist()):
            if token < 0:
                continue
            self.prefixes[row] = self.prefixes[row] + (token,)
            self.logprobs[row].append(picked[row])
            self.n_children[row].append(counts[row])

    def completions(self, n_prompts: int, n: int) -> list[list[Completion]]:
        out = []
        for p in range(n_prompts):
            group = []
            for row in range(p * n, (p + 1) * n):
                item = self.trie.item_at(self.prefixes[row])
                if item is None:
                    raise RuntimeError(f"constrained sampling ended off the trie at {self.prefixes[row]}")
                group.append(Completion(item, self.prefixes[row], tuple(self.logprobs[row]),
                                        tuple(self.n_children[row])))
            out.append(group)
        return out
