"""R²ec as a recommender, and the `r2ec` bundle files and loader (r2ec.txt §3.1 "Inference", §4.1, App. D).

Bundle files (besides manifest.json and catalog.json):

    identifiers/           the identifier scheme that spells history items in the prompt
    tokenizer/             the backbone's tokenizer (holds <think>, </think>, <answer>)
    policy/                the backbone causal LM, HF format (lm_head = the reasoning head)
    r2ec/config.json       rec-head settings: similarity (normalize, τ), item prompt kind and length cap,
                           the catalog fingerprint
    item_embeddings.npy    the rec head's item table E [N, d] float32 in catalog index order, as trained

Inference per sample: prompt + `<think>`, greedy reasoning until `</think>` (forced after max_think_tokens),
`<answer>`; the final hidden state there is h_u, and s(u, v) = <h_u, e_v>/τ ranks the full catalog in one
inner product: no beam search. Bundles of the "w/o reasoning" control append `<answer>` to the prompt directly.
Serving-side module: it imports no trainer, evaluator or pipeline.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from training.bundle import BundleError
from training.catalog import Catalog
from training.data.types import Sample
from training.identifiers.base import IdentifierScheme
from training.inference import load_policy_text, register_loader
from training.models.r2ec import R2ec, build_item_prompt_pieces
from training.prompts import (
    ANSWER,
    BOS,
    REASONING_LAYOUT_VERSION,
    build_reasoning_prompt,
    r2ec_prompt_kwargs,
    text_words,
)
from training.reasoning.rechead_recommender import catalog_fingerprint
from training.rollout.reasoning_sampling import sample_reasoning
from training.tokenization.builder import encode_pieces

MODEL_DIR = "r2ec"
ITEM_EMBEDDINGS = "item_embeddings.npy"
ITEM_PROMPTS = ("text", "identifier_text")
MAX_PROMPT_TOKENS = 480


def build_item_pieces(catalog: Catalog, scheme: IdentifierScheme | None, kind: str = "text") -> list[list[str]]:
    """Per catalog item (index order), the pieces of its description prompt, whose last hidden state is e_v.

    "text": [<bos>, words of the item text, <answer>] (r2ec.txt §4.1); "identifier_text": [<bos>, the item's
    identifier tokens, words of its text, <answer>] (the tiny word-level base knows items by their ids).
    """
    if kind not in ITEM_PROMPTS:
        raise ValueError(f"unknown item prompt {kind!r}; choose one of {list(ITEM_PROMPTS)}")
    texts = catalog.texts()
    if kind == "text":
        return [build_item_prompt_pieces(t) for t in texts]
    if scheme is None:
        raise ValueError("item prompt 'identifier_text' needs an identifier scheme")
    return [[BOS, *scheme.item_tokens(i), *text_words(t), ANSWER] for i, t in zip(catalog.item_ids, texts, strict=True)]


def build_r2ec_model(lm, tokenizer, catalog: Catalog, scheme: IdentifierScheme | None, settings: dict) -> R2ec:
    """R2ec over `catalog` with the rec-head `settings` of r2ec/config.json (normalize, temperature,
    max_item_tokens, item_prompt); the item table starts at zeros."""
    pieces = build_item_pieces(catalog, scheme, settings["item_prompt"])
    return R2ec(lm, tokenizer, [str(i) for i in range(len(pieces))], item_pieces=lambda key: pieces[int(key)],
                normalize=settings["normalize"], temperature=settings["temperature"],
                max_item_tokens=settings["max_item_tokens"])


def rec_head_settings(cfg) -> dict:
    """r2ec/config.json's rec-head settings from an `R2ecConfig`."""
    return {"normalize": cfg.similarity_normalize, "temperature": cfg.similarity_temperature,
            "max_item_tokens": cfg.max_item_tokens, "item_prompt": cfg.item_prompt}


class R2ecRecommender:
    """Greedy reasoning, then one rec-head ranking over the full catalog (r2ec.txt App. D); `rank(samples, k)`.

    reasoning: False for the "w/o reasoning" control (prompt + `<answer>`); max_think_tokens: reasoning budget;
    batch_size: samples per decoding batch; prompt_style: "tokens" or "text" (`r2ec_prompt_kwargs`). Excluded
    items are masked to -inf before the top k.
    """

    def __init__(self, model: R2ec, scheme: IdentifierScheme, catalog: Catalog, reasoning: bool = True,
                 max_think_tokens: int = 64, name: str = "r2ec", batch_size: int = 64,
                 max_prompt_tokens: int = MAX_PROMPT_TOKENS, prompt_style: str = "tokens"):
        if model.n_items != len(catalog):
            raise ValueError(f"the rec head scores {model.n_items} items, the catalog holds {len(catalog)}")
        self.model, self.scheme, self.catalog, self.name = model.eval(), scheme, catalog, name
        self.tokenizer, self.vocab = model.tokenizer, model.tokenizer.get_vocab()
        self.reasoning, self.max_think_tokens = reasoning, max_think_tokens
        self.batch_size, self.max_prompt_tokens = batch_size, max_prompt_tokens
        self.known = set(scheme.item_ids)
        self.prompt_kwargs = r2ec_prompt_kwargs(prompt_style)
        self.memo: dict[str, list[int]] = {}  # title -> token ids, shared by every request

    def prompt_ids(self, sample: Sample) -> list[int]:
        """The sample's reasoning prompt (no `<think>`); longer than max_prompt_tokens -> first + most recent."""
        pieces = build_reasoning_prompt(sample.profile, sample.history, self.scheme.item_tokens, known=self.known,
                                        **self.prompt_kwargs)
        ids = encode_pieces(self.tokenizer, pieces, self.vocab, self.memo)
        if len(ids) > self.max_prompt_tokens:
            ids = ids[:1] + ids[len(ids) - self.max_prompt_tokens + 1:]
        return ids

    @torch.no_grad()
    def decode_reasoning(self, prompts: Sequence[Sequence[int]]) -> tuple[list[list[int]], list[list[int]]]:
        """Prompts -> (rows the completions follow, completions ending in `<answer>`): greedy reasoning closed
        with `</think><answer>`, or `<answer>` alone for the control. The decoding the paper calls the cost."""
        m = self.model
        if not self.reasoning:
            return [list(p) for p in prompts], [[m.answer_id] for _ in prompts]
        think = [[*p, m.think_id] for p in prompts]
        thoughts = sample_reasoning(m.lm, think, 1, m.think_end_id, m.pad_id, m.banned_ids, self.max_think_tokens,
                                    temperature=0.0)
        return think, [m.close_reasoning(t, c)[0] for group in thoughts for t, c in group]

    @torch.no_grad()
    def rank_step(self, rows: Sequence[Sequence[int]], completions: Sequence[Sequence[int]]) -> torch.Tensor:
        """The ranking step: one forward to h_u at `<answer>`, then s(u, ·) over the catalog -> [B, N]."""
        user = self.model.forward_rollouts(rows, completions, [0] * len(rows), with_logprobs=False).user
        return self.model.score_all(user)

    def score_all(self, samples: Sequence[Sample]) -> np.ndarray:
        """Scores float32 [n_samples, N] in catalog index order."""
        out = []
        for start in range(0, len(samples), self.batch_size):
            prompts = [self.prompt_ids(s) for s in samples[start:start + self.batch_size]]
            out.append(self.rank_step(*self.decode_reasoning(prompts)).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.catalog)), np.float32)

    def rank(self, samples: Sequence[Sample], k: int, exclude: Sequence[set[str]] | None = None) -> list[list[str]]:
        """Top-k distinct raw ids per sample, best first; excluded ids never appear."""
        scores = self.score_all(list(samples)).astype(np.float64)
        if exclude is not None:
            for row, items in enumerate(exclude):
                scores[row, [self.catalog.index_of(i) for i in items if i in self.catalog]] = -np.inf
        k = min(k, scores.shape[1])
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return [[self.catalog.id_at(int(j)) for j in row if np.isfinite(scores[r, j])] for r, row in enumerate(top)]


def save_r2ec_files(root: Path, model: R2ec, catalog: Catalog, scheme: IdentifierScheme, settings: dict) -> None:
    """Write identifiers/, tokenizer/, policy/, r2ec/config.json and item_embeddings.npy under `root`."""
    root = Path(root)
    lm = model.lm.cpu()
    scheme.save(root / "identifiers")
    model.tokenizer.save_pretrained(root / "tokenizer")
    lm.save_pretrained(root / "policy", safe_serialization=True)
    model.tokenizer.save_pretrained(root / "policy")
    (root / MODEL_DIR).mkdir(parents=True, exist_ok=True)
    config = {**settings, "n_items": model.n_items, "hidden_size": model.hidden_size,
              "catalog_sha256": catalog_fingerprint(catalog)}
    (root / MODEL_DIR / "config.json").write_text(json.dumps(config, indent=2))
    np.save(root / ITEM_EMBEDDINGS, model.item_table.detach().cpu().numpy().astype(np.float32))


def load_r2ec_model(root: Path, manifest: dict, device: str = "cpu") -> tuple[R2ec, IdentifierScheme, Catalog]:
    """(R2ec with its saved item table, in eval mode on `device`, identifier scheme, catalog) of a bundle."""
    from training.models.policy import load_policy

    tokenizer, scheme, catalog = load_policy_text(root, manifest)
    config = json.loads((Path(root) / MODEL_DIR / "config.json").read_text())
    if config.get("catalog_sha256") != catalog_fingerprint(catalog):
        raise BundleError(f"{root}: the R2ec item table was built for another catalog than the bundle's catalog.json")
    table = np.load(Path(root) / ITEM_EMBEDDINGS)
    if table.ndim != 2 or table.shape != (len(catalog), config["hidden_size"]) or table.dtype != np.float32:
        raise BundleError(f"{root}: {ITEM_EMBEDDINGS} is {table.dtype} {table.shape}, expected float32 "
                          f"[{len(catalog)}, {config['hidden_size']}]")
    model = build_r2ec_model(load_policy(Path(root) / "policy"), tokenizer, catalog, scheme, config)
    model.item_table.copy_(torch.from_numpy(table))
    return model.to(device).eval(), scheme, catalog


@register_loader("r2ec")
def load_r2ec_recommender(root: Path, manifest: dict, device: str) -> R2ecRecommender:
    """Backbone, item table, scheme and catalog from the bundle; reasoning settings from `generation.r2ec`."""
    entry = (manifest.get("generation") or {}).get("r2ec")
    if not isinstance(entry, dict) or entry.get("layout") != REASONING_LAYOUT_VERSION:
        raise BundleError(f"{root}: R2ec generation settings missing or of another reasoning layout; retrain")
    model, scheme, catalog = load_r2ec_model(root, manifest, device)
    return R2ecRecommender(model, scheme, catalog, reasoning=entry["reasoning"],
                           max_think_tokens=entry["max_think_tokens"], name=manifest.get("name", "r2ec"),
                           max_prompt_tokens=manifest["generation"].get("max_prompt_tokens", MAX_PROMPT_TOKENS),
                           prompt_style=entry.get("prompt_style", "tokens"))
