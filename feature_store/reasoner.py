"""Nearline reasoning: a reasoning-SFT policy writes each user's chain of thought and answer on vLLM.

The LLM half of RPORec's topology (DESIGN.md §1, §6): CoTs are written in batch, off the request path,
and cached for the online Rechead. Decoding follows the bundle's reasoning mode
(`training/reasoning_sft/recommender.py`; gream.txt §3, §6.1.2):

1. prompt + `<think>` -> the CoT, greedy, stopped by the policy's own `</think>` or at `max_think_tokens`;
   structure tokens other than `</think>` are banned (a CoT cannot open the answer itself);
2. prompt + `<think>` CoT `</think><answer>` -> the top `answer_k` items by exact log P through the item
   trie (`VLLMTrieEngine.top_items`), the user's seen items excluded, so every answer is a catalog item.

Everything here is plain Python: `ReasonerActor` is the batch function that the Ray Data shell
(`nearline_ray.py`) runs inside a stateful actor; `reason_batch` is what it and the local runner call.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from feature_store.schema import decode_history

BANNED_BIAS = -100.0  # vLLM clamps logit_bias to [-100, 100]; -100 makes a token unreachable in practice


@dataclass(frozen=True)
class ReasonerSettings:
    """answer_k: items kept per answer; threads: torch threads of the engine (Ray gives actors 1)."""

    answer_k: int = 10
    max_think_tokens: int | None = None  # None: the bundle's generation.reasoning.max_think_tokens
    threads: int = 0  # 0: leave torch's default
    dtype: str = "float32"
    catalog_bundle: str | None = None  # set: the model is an HF chat LLM folder, items from this bundle's catalog


@dataclass(frozen=True)
class ReasonedUser:
    user_id: str
    cot: str
    answer: tuple[str, ...]
    closed: bool
    cot_tokens: int


class PolicyPrompter:
    """Token ids of a user's reasoning prompt from a policy bundle (tokenizer, identifiers, catalog; no weights)."""

    def __init__(self, bundle_dir: Path):
        from transformers import AutoTokenizer

        from training.bundle import load_bundle_catalog, validate_bundle
        from training.identifiers.base import load_scheme
        from training.inference import reasoning_decode_settings, reasoning_entry
        from training.models.policy_recommender import build_item_trie
        from training.prompts import ANSWER, STRUCTURE_TOKENS, THINK, THINK_END

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.root = Path(bundle_dir)
        self.manifest = validate_bundle(self.root)
        reasoning_entry(self.root, self.manifest)
        self.decode = reasoning_decode_settings(self.manifest)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.root / "tokenizer"))
        self.scheme, self.catalog = load_scheme(self.root / "identifiers"), load_bundle_catalog(self.root)
        self.vocab = self.tokenizer.get_vocab()
        self.trie, self.item_ids = build_item_trie(self.scheme, self.tokenizer)
        self.depth = self.scheme.depth or max(len(ids) for ids in self.item_ids.values())
        self.think_id, self.think_end_id, self.answer_id = (self.vocab[t] for t in (THINK, THINK_END, ANSWER))
        self.banned = sorted(self.vocab[t] for t in STRUCTURE_TOKENS if t != THINK_END and t in self.vocab)

    @property
    def model_version(self) -> str:
        return str(self.manifest["bundle_version"])

    @staticmethod
    def version_of(bundle_dir: Path) -> str:
        """The bundle version of a reasoning-mode policy bundle (BundleError for any other bundle)."""
        from training.bundle import validate_bundle
        from training.inference import reasoning_entry

        manifest = validate_bundle(Path(bundle_dir))
        reasoning_entry(Path(bundle_dir), manifest)
        return str(manifest["bundle_version"])

    def prompt_budget(self, max_think_tokens: int) -> int:
        return self.decode.max_total_tokens - max_think_tokens - self.depth - 3

    def known_history(self, history: Sequence[str]) -> tuple[str, ...]:
        """The history's catalog items, oldest first (unknown ids are dropped, not guessed)."""
        return tuple(item for item in history if item in self.catalog)

    def prompt_ids(self, history: Sequence[str], max_think_tokens: int) -> list[int]:
        """The reasoning prompt of `ReasoningRecommender.prompt_ids`, truncated to fit, then `<think>`."""
        from training.data.types import Sample
        from training.reasoning_sft.examples import reasoning_prompt_pieces, truncate_prompt
        from training.tokenization.builder import encode_pieces

        sample = Sample("nearline", "nearline", tuple(history), "", None)
        pieces = reasoning_prompt_pieces(sample, self.scheme.item_tokens, self.item_ids)
        ids = encode_pieces(self.tokenizer, pieces, self.vocab)
        return truncate_prompt(ids, self.prompt_budget(max_think_tokens)) + [self.think_id]


class NearlineReasoner:
    """Stateful batch function: builds the vLLM engine once, then turns batches of users into CoT rows."""

    def __init__(self, bundle_dir: str, settings: ReasonerSettings | None = None):
        from training.rollout.vllm_backend import VLLMTrieEngine

        self.settings = settings or ReasonerSettings()
        if self.settings.threads > 0:
            import torch

            torch.set_num_threads(self.settings.threads)
        self.prompter = PolicyPrompter(Path(bundle_dir))
        p = self.prompter
        self.max_think = self.settings.max_think_tokens or p.decode.max_think_tokens
        self.engine = VLLMTrieEngine(p.root / "policy", p.trie, p.depth, p.tokenizer.eos_token_id,
                                     beam_width=self.settings.answer_k,
                                     dtype=self.settings.dtype, max_model_len=p.decode.max_total_tokens)

    def reason(self, user_ids: Sequence[str], histories: Sequence[Sequence[str]]) -> list[ReasonedUser]:
        """One ReasonedUser per user (histories of known items only; an empty one gets an empty answer)."""
        known = [self.prompter.known_history(h) for h in histories]
        prompts = [self.prompter.prompt_ids(h, self.max_think) for h in known]
        thoughts = self._thoughts(prompts)
        p = self.prompter
        extended = [prompt + cot + [p.think_end_id, p.answer_id] for prompt, (cot, _) in zip(prompts, thoughts,
                                                                                                strict=True)]
        answers = self.engine.top_items(extended, self.settings.answer_k, [set(h) for h in known])
        return [ReasonedUser(user, p.tokenizer.decode(cot, skip_special_tokens=False),
                             tuple(item for item, _ in answer), closed, len(cot))
                for user, (cot, closed), answer in zip(user_ids, thoughts, answers, strict=True)]

    def _thoughts(self, prompts: list[list[int]]) -> list[tuple[list[int], bool]]:
        from vllm import SamplingParams

        p = self.prompter
        params = SamplingParams(temperature=0.0, max_tokens=self.max_think, stop_token_ids=[p.think_end_id],
                                logit_bias={t: BANNED_BIAS for t in p.banned}, detokenize=False)
        outputs = self.engine.llm.generate([{"prompt_token_ids": q} for q in prompts], params, use_tqdm=False)
        rows = []
        for out in outputs:
            tokens = [t for t in out.outputs[0].token_ids if t != p.think_end_id]
            rows.append((tokens, out.outputs[0].finish_reason == "stop"))
        return rows



def build_reasoner(model: str, settings: ReasonerSettings):
    """A reasoning-SFT policy bundle (`NearlineReasoner`), or an HF chat LLM folder when
    `settings.catalog_bundle` is set (`TextLLMReasoner`)."""
    if settings.catalog_bundle:
        from feature_store.reasoner_text import TextLLMReasoner

        return TextLLMReasoner(model, settings.catalog_bundle, settings)
    return NearlineReasoner(model, settings)


def model_version_of(model: str, settings: ReasonerSettings) -> str:
    """What the job writes as `model_version`: the bundle version, or the LLM folder's fingerprint."""
    if settings.catalog_bundle:
        from feature_store.reasoner_text import text_model_version

        return text_model_version(Path(model))
    return PolicyPrompter.version_of(Path(model))


def reason_batch(reasoner, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Batch (columns user_id, history JSON, chunk_id, ...) -> the same rows plus cot, answer (JSON list),
    closed, cot_tokens."""
    users = [str(u) for u in batch["user_id"]]
    reasoned = reasoner.reason(users, [decode_history(str(h)) for h in batch["history"]])
    return {**batch,
            "cot": np.array([r.cot for r in reasoned], dtype=object),
            "answer": np.array([json.dumps(list(r.answer)) for r in reasoned], dtype=object),
            "closed": np.array([r.closed for r in reasoned]),
            "cot_tokens": np.array([r.cot_tokens for r in reasoned], dtype=np.int64)}


class ReasonerActor:
    """The stateful batch function Ray Data runs in an actor: builds the reasoner once, then reasons batches."""

    def __init__(self, model: str, settings: ReasonerSettings):
        self.reasoner = build_reasoner(model, settings)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return reason_batch(self.reasoner, batch)
