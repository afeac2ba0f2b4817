"""Reasoning-mode recommender: CoT first, then a trie-constrained answer (gream.txt §3, §6.1.2; DESIGN.md §1).

Stage 1 (`decode.generate_thoughts`): prompt + `<think>` -> n CoTs, each closed by the policy's own `</think>`
or forced at `max_think_tokens`. Stage 2: prompt + `<think>` CoT `</think><answer>` -> `TrieBeamSearch.top_items`,
so every answer is a real catalog item (no parse failures) and excluded items are masked inside the beam.
The answers of the n CoTs are merged by `passk.rank_union`. Defaults: one greedy CoT (Pass@1);
`ReasoningDecodeSettings.pass_at(K)` is GREAM's Pass@K sampling (K CoTs, temperature 0.7, top-p 0.9).

Token budget: prompt + 1 + max_think_tokens + 2 + identifier depth <= max_total_tokens (the SFT examples'
`max_tokens`); the prompt loses its front (after `<bos>`) to fit, as in direct mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from training.catalog import Catalog
from training.data.types import Sample
from training.identifiers.base import IdentifierScheme
from training.models.policy_recommender import build_item_trie
from training.prompts import ANSWER, STRUCTURE_TOKENS, THINK, THINK_END
from training.reasoning_sft.decode import generate_thoughts
from training.reasoning_sft.examples import reasoning_prompt_pieces, truncate_prompt
from training.reasoning_sft.passk import answers_of, rank_union
from training.rollout.beam import TrieBeamSearch
from training.tokenization.builder import encode_pieces


@dataclass(frozen=True)
class ReasoningDecodeSettings:
    """n_cots: CoTs per sample (K of Pass@K); temperature 0 = greedy (then n_cots must be 1)."""

    n_cots: int = 1
    temperature: float = 0.0
    top_p: float = 0.9
    max_think_tokens: int = 320
    max_total_tokens: int = 512
    beam_width: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_cots < 1 or self.max_think_tokens < 0 or not 0 < self.top_p <= 1 or self.temperature < 0:
            raise ValueError(f"invalid reasoning decode settings: {asdict(self)}")
        if self.temperature == 0 and self.n_cots > 1:
            raise ValueError("greedy decoding writes one CoT: n_cots > 1 needs temperature > 0")

    @classmethod
    def pass_at(cls, k: int, **overrides) -> ReasoningDecodeSettings:
        """GREAM's Pass@K sampling (gream.txt §6.1.2): K CoTs at temperature 0.7, top-p 0.9."""
        return cls(**{"n_cots": k, "temperature": 0.7, "top_p": 0.9, **overrides})


@dataclass(frozen=True)
class ReasoningOutput:
    """Per sample: each CoT's text and whether the policy closed it itself, each CoT's answer, the ranking."""

    thoughts: tuple[str, ...]
    closed: tuple[bool, ...]
    answers: tuple[str, ...]
    ranked: tuple[str, ...]


class ReasoningRecommender:
    """`rank(samples, k, exclude)` through two-stage reasoning decoding; `reason` also returns the CoTs."""

    def __init__(self, model, tokenizer, scheme: IdentifierScheme, catalog: Catalog,
                 settings: ReasoningDecodeSettings | None = None, name: str = "reasoning"):
        self.model, self.tokenizer, self.scheme, self.catalog, self.name = model, tokenizer, scheme, catalog, name
        self.settings = settings or ReasoningDecodeSettings()
        self.vocab = tokenizer.get_vocab()
        self.trie, self.item_ids = build_item_trie(scheme, tokenizer)
        depth = scheme.depth or max(len(ids) for ids in self.item_ids.values())
        self.beam = TrieBeamSearch(model, self.trie, depth, tokenizer.pad_token_id, self.settings.beam_width)
        self.think_id, self.think_end_id, self.answer_id = (self.vocab[t] for t in (THINK, THINK_END, ANSWER))
        self.banned = {self.vocab[t] for t in STRUCTURE_TOKENS if t != THINK_END and t in self.vocab}
        self.prompt_budget = self.settings.max_total_tokens - self.settings.max_think_tokens - depth - 3
        if self.prompt_budget < 2:
            raise ValueError(f"max_total_tokens {self.settings.max_total_tokens} leaves no room for a prompt")

    def prompt_ids(self, sample: Sample) -> list[int]:
        """The reasoning prompt (the direct layout on the tiny policy), truncated, then `<think>`."""
        ids = encode_pieces(self.tokenizer, reasoning_prompt_pieces(sample, self.scheme.item_tokens, self.item_ids),
                            self.vocab)
        return truncate_prompt(ids, self.prompt_budget) + [self.think_id]

    def reason(self, samples: Sequence[Sample], k: int,
               exclude: Sequence[set[str]] | None = None) -> list[ReasoningOutput]:
        """Stage 1 then stage 2 for every sample; ranked holds min(k, #allowed items) distinct items."""
        s, prompts = self.settings, [self.prompt_ids(sample) for sample in samples]
        device = next(self.model.parameters()).device
        generator = torch.Generator(device=device).manual_seed(s.seed) if s.temperature > 0 else None
        thoughts = generate_thoughts(self.model, prompts, s.n_cots, self.think_end_id, self.tokenizer.pad_token_id,
                                     self.banned, s.max_think_tokens, s.temperature, s.top_p, generator)
        extended = [prompt + cot + [self.think_end_id, self.answer_id]
                    for prompt, cots in zip(prompts, thoughts, strict=True) for cot, _ in cots]
        repeated = None if exclude is None else [e for e in exclude for _ in range(s.n_cots)]
        beams = self.beam.top_items(extended, k, repeated)
        outputs = []
        for row, cots in enumerate(thoughts):
            group = beams[row * s.n_cots:(row + 1) * s.n_cots]
            outputs.append(ReasoningOutput(
                thoughts=tuple(self.tokenizer.decode(cot, skip_special_tokens=False) for cot, _ in cots),
                closed=tuple(closed for _, closed in cots),
                answers=tuple(answers_of(group)),
                ranked=tuple(rank_union(group, k)),
            ))
        return outputs

    def rank(self, samples: Sequence[Sample], k: int, exclude: Sequence[set[str]] | None = None) -> list[list[str]]:
        """Per sample, the top-k raw item ids (`passk.rank_union` of the CoTs' answer beams)."""
        return [list(output.ranked) for output in self.reason(samples, k, exclude)]
