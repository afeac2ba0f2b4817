"""Shared fixtures: a tiny dataset and a tiny policy, built in tmp dirs."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from training.catalog import Catalog  # noqa: E402
from training.data.types import Interaction, ItemInfo, RawDataset, UserProfile  # noqa: E402


@pytest.fixture
def one_torch_thread():
    """A tiny model trains ~20x faster on one thread than on several contended ones; restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_dataset() -> RawDataset:
    """12 items, 30 users; every user walks items i, i+1, i+2, ... (a planted next-item pattern)."""
    return make_tiny_dataset()


def make_tiny_dataset() -> RawDataset:
    items = {str(i): ItemInfo(str(i), f"Film {i}", "1995", ("Drama",) if i % 2 else ("Comedy",))
             for i in range(1, 13)}
    users = {str(u): UserProfile(str(u), str(20 + u), "M" if u % 2 else "F", "student") for u in range(1, 31)}
    interactions = []
    for u in range(1, 31):
        start = u % 12
        for step in range(8):
            interactions.append(Interaction(str(u), str((start + step) % 12 + 1), 1000 * step + u))
    return RawDataset("tiny", interactions, items, users)


@pytest.fixture
def tiny_catalog(tiny_dataset) -> Catalog:
    return Catalog(tiny_dataset.items.values())


def make_tiny_policy(catalog: Catalog, hidden: int = 32, heads: int = 2):
    """(model, tokenizer, scheme): random tiny Qwen3 over 2-level SIDs (+ disambiguation) of the catalog."""
    import numpy as np

    from training.config import PolicyConfig
    from training.identifiers.rqkmeans import SemanticIdScheme
    from training.models.policy import build_policy
    from training.tokenization.builder import build_tokenizer, collect_vocabulary

    embeddings = np.random.default_rng(0).normal(size=(len(catalog), 8)).astype("float32")
    scheme = SemanticIdScheme.fit(catalog.item_ids, embeddings, n_levels=2, n_codes=3, seed=0)
    tokenizer = build_tokenizer(collect_vocabulary(catalog, [], scheme.new_tokens()))
    config = PolicyConfig(hidden_size=hidden, num_layers=2, num_heads=heads, num_kv_heads=1,
                          intermediate_size=2 * hidden)
    return build_policy(config, tokenizer, seed=0), tokenizer, scheme


@pytest.fixture
def tiny_policy(tiny_catalog):
    """(model, tokenizer, scheme): random tiny Qwen3 over 2-level SIDs (+ disambiguation) of 12 items."""
    return make_tiny_policy(tiny_catalog)
