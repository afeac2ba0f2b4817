"""The rollout engine protocol of the RL loop, and our in-process batched backend.

A `RolloutEngine` samples constrained completions, ranks the top-k items and takes new
policy weights. `BatchedTrieEngine` serves all three from one HF model in this process
(KV-cache trie sampling and beam search); a vLLM backend implements the same protocol.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Protocol

import torch

from training.identifiers.trie import ItemTrie
from training.rollout.beam import TrieBeamSearch
from training.rollout.sampling import Completion, TrieSampler


class RolloutEngine(Protocol):
    def sample(self, prompts: Sequence[list[int]], n: int, temperature: float = 1.0, top_k: int = 0,
               generator: torch.Generator | None = None) -> list[list[Completion]]:
        """Per prompt, n trie-constrained completions (token ids, per-token policy log-probs, item)."""
        ...

    def top_items(self, prompts: Sequence[list[int]], k: int,
                  exclude: Sequence[Collection[str]] | None = None) -> list[list[tuple[str, float]]]:
        """Per prompt, the k most likely distinct items with exact log P(item | prompt)."""
        ...

    def sync_weights(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Make the engine's model equal to the policy's weights (exactly)."""
        ...


class BatchedTrieEngine:
    """Sampling and beam search on one HF causal LM held in this process. depth: max id length."""

    def __init__(self, model, trie: ItemTrie, depth: int, pad_id: int, beam_width: int = 20):
        self.model = model
        self._sampler = TrieSampler(model, trie, depth, pad_id)
        self._beam = TrieBeamSearch(model, trie, depth, pad_id, beam_width)

    def sample(self, prompts, n, temperature=1.0, top_k=0, generator=None):
        return self._sampler.sample(prompts, n, temperature, top_k, generator)

    def top_items(self, prompts, k, exclude=None):
        return self._beam.top_items(prompts, k, exclude)

    @torch.no_grad()
    def sync_weights(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Copy in place (a no-op in effect when the engine shares the policy's module)."""
        own = self.model.state_dict()
        for name, tensor in state_dict.items():
            if own[name].data_ptr() != tensor.data_ptr():
                own[name].copy_(tensor)
