"""The SFT/RL policy behind the common `rank(samples, k)` contract (DESIGN.md §4)."""

from __future__ import annotations

from collections.abc import Sequence

from training.catalog import Catalog
from training.data.types import Sample
from training.identifiers.base import IdentifierScheme
from training.identifiers.trie import ItemTrie
from training.prompts import build_prompt_tokens
from training.rollout.beam import TrieBeamSearch
from training.rollout.generator import HFTrieBeamGenerator
from training.tokenization.builder import encode_pieces

BACKENDS = {"batched": TrieBeamSearch, "hf_generate": HFTrieBeamGenerator}


def build_item_trie(scheme: IdentifierScheme, tokenizer) -> tuple[ItemTrie, dict[str, list[int]]]:
    """Trie over token ids of every item the scheme holds; also returns item -> ids.

    Variable-length identifiers (titles) end with EOS, so no item's path is a prefix of another's.
    """
    end = [tokenizer.eos_token_id] if scheme.depth is None else []
    vocab = tokenizer.get_vocab()
    ids = {item: encode_pieces(tokenizer, scheme.item_tokens(item), vocab) + end for item in scheme.item_ids}
    return ItemTrie.build(ids), ids


def encode_prompt(sample: Sample, tokenizer, scheme: IdentifierScheme, item_ids: dict[str, list[int]],
                  vocab: dict[str, int], max_prompt_tokens: int) -> list[int]:
    """A sample's prompt token ids; longer than max_prompt_tokens -> the first token and the most recent rest.

    Every engine over a policy (HF beam here, vLLM in serving/engine/vllm_engine.py) builds prompts with this.
    """
    tokens = build_prompt_tokens(sample.profile, sample.history, scheme.item_tokens, item_ids)
    ids = encode_pieces(tokenizer, tokens, vocab)
    if len(ids) > max_prompt_tokens:
        ids = ids[:1] + ids[len(ids) - max_prompt_tokens + 1:]
    return ids


class PolicyRecommender:
    """Ranks items by trie-constrained beam search over the policy's item identifiers."""

    def __init__(self, model, tokenizer, scheme: IdentifierScheme, catalog: Catalog,
                 beam_width: int = 20, max_prompt_tokens: int = 480, name: str = "sft",
                 backend: str = "batched"):
        self.name = name
        self.model = model
        self.tokenizer = tokenizer
        self.scheme = scheme
        self.catalog = catalog
        self.max_prompt_tokens = max_prompt_tokens
        self.vocab = tokenizer.get_vocab()
        self.trie, self.item_ids = build_item_trie(scheme, tokenizer)
        if backend not in BACKENDS:
            raise ValueError(f"unknown generation backend {backend!r}; choose one of {sorted(BACKENDS)}")
        depth = scheme.depth or max(len(ids) for ids in self.item_ids.values())
        self.generator = BACKENDS[backend](model, self.trie, depth, tokenizer.pad_token_id, beam_width)

    def prompt_ids(self, sample: Sample) -> list[int]:
        return encode_prompt(sample, self.tokenizer, self.scheme, self.item_ids, self.vocab, self.max_prompt_tokens)

    def rank(self, samples: Sequence[Sample], k: int, exclude: Sequence[set[str]] | None = None) -> list[list[str]]:
        """Per sample, the top-k raw item ids; items in exclude[row] are masked inside the beam search,
        so k come back whenever the catalog holds >= k items outside it (beam width max(k, beam_width))."""
        results = self.generator.top_items([self.prompt_ids(s) for s in samples], k, exclude)
        return [[item for item, _ in pairs] for pairs in results]
