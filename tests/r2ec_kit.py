"""A tiny R²ec over the 12-item tiny catalog: random 2-layer Qwen3 (hidden 32), word vocabulary of every item text."""

from __future__ import annotations

from dataclasses import dataclass

from tests.conftest import make_tiny_dataset


@dataclass
class R2ecKit:
    model: object  # training.models.r2ec.R2ec
    catalog: object
    scheme: object
    tokenizer: object
    split: object


def make_r2ec_kit(hidden: int = 32, seed: int = 0, **config) -> R2ecKit:
    """R2ec on a fresh tiny policy; `config` overrides R2ecConfig fields used by the model (similarity, ...)."""
    import numpy as np

    from training.catalog import Catalog
    from training.config import PolicyConfig, R2ecConfig
    from training.data.split import build_split
    from training.identifiers.rqkmeans import SemanticIdScheme
    from training.models.policy import build_policy
    from training.models.r2ec import build_r2ec
    from training.tokenization.builder import build_tokenizer, collect_vocabulary

    dataset = make_tiny_dataset()
    catalog = Catalog(dataset.items.values())
    split = build_split(dataset, "temporal", 20)
    embeddings = np.random.default_rng(0).normal(size=(len(catalog), 8)).astype("float32")
    scheme = SemanticIdScheme.fit(catalog.item_ids, embeddings, n_levels=2, n_codes=3, seed=0)
    # min_word_count=1: the item numbers of "Film 7 (1995) Drama" are words too, so item prompts differ
    tokenizer = build_tokenizer(collect_vocabulary(catalog, split.profiles.values(), scheme.new_tokens(),
                                                   min_word_count=1))
    policy_cfg = PolicyConfig(hidden_size=hidden, num_layers=2, num_heads=2, num_kv_heads=1,
                              intermediate_size=2 * hidden)
    lm = build_policy(policy_cfg, tokenizer, seed=seed)
    model = build_r2ec(lm, tokenizer, catalog.texts(), R2ecConfig(**config))
    return R2ecKit(model, catalog, scheme, tokenizer, split)
