"""Reasoning-SFT fixtures: the tiny split, a CoT-aware tokenizer, tiny policies (hidden <= 64, 2 layers)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from training.catalog import Catalog
from training.cot.programmatic import ProgrammaticTeacher
from training.data.split import build_split
from training.data.types import ItemInfo, Sample

# Varied genres, years and punctuation (the tiny fixture has "Film i", 1995, Drama/Comedy only).
VARIED_ITEMS = [
    ItemInfo("1", "Alien (1979)", "1979", ("Horror", "Sci-Fi")),
    ItemInfo("2", "Heat (1995)", "1995", ("Action", "Crime", "Thriller")),
    ItemInfo("3", "Toy Story (1995)", "1995", ("Animation", "Children's", "Comedy")),
    ItemInfo("4", "Fargo (1996)", "1996", ("Crime", "Drama", "Thriller")),
    ItemInfo("5", "Mystery Film (1994)", "1994", ("Crime", "Film-Noir", "Thriller")),
    ItemInfo("6", "Twin (1990)", "1990", ("Drama",)),
    ItemInfo("7", "Twin (1990)", "1990", ("Comedy",)),
    ItemInfo("8", "No Metadata", "", ()),
]
VARIED_SAMPLES = [Sample("a:3", "a", ("1", "2", "4"), "5"), Sample("b:4", "b", ("3", "6", "7", "8"), "1"),
                  Sample("c:2", "c", ("8", "5"), "7"), Sample("d:1", "d", ("6",), "8")]


@dataclass
class Kit:
    """Everything reasoning SFT needs on one catalog."""

    catalog: Catalog
    samples: list
    scheme: object
    teacher: ProgrammaticTeacher
    records: list
    tokenizer: object
    item_ids: dict

    def encode(self, pieces):
        from training.tokenization.builder import encode_pieces

        return encode_pieces(self.tokenizer, pieces, self.tokenizer.get_vocab())


def make_kit(catalog: Catalog, samples, profiles=(), max_samples: int = 0) -> Kit:
    from training.identifiers.rqkmeans import SemanticIdScheme
    from training.models.policy_recommender import build_item_trie
    from training.reasoning_sft.corpus import corpus_words, write_reasoning_corpus
    from training.tokenization.builder import build_tokenizer, collect_vocabulary

    embeddings = np.random.default_rng(0).normal(size=(len(catalog), 8)).astype("float32")
    scheme = SemanticIdScheme.fit(catalog.item_ids, embeddings, n_levels=2, n_codes=3, seed=0)
    teacher = ProgrammaticTeacher(catalog)
    records = write_reasoning_corpus(teacher, samples, scheme.item_tokens, max_samples=max_samples)
    tokenizer = build_tokenizer(collect_vocabulary(catalog, profiles, scheme.new_tokens(),
                                                   extra_words=corpus_words(records)))
    _, item_ids = build_item_trie(scheme, tokenizer)
    return Kit(catalog, list(samples), scheme, teacher, records, tokenizer, item_ids)


def make_model(tokenizer, hidden: int = 32, seed: int = 0):
    from training.config import PolicyConfig
    from training.models.policy import build_policy

    config = PolicyConfig(hidden_size=hidden, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=2 * hidden)
    return build_policy(config, tokenizer, seed=seed).eval()


@pytest.fixture
def sft_split(tiny_dataset):
    return build_split(tiny_dataset, "temporal", 20)


@pytest.fixture
def tiny_kit(tiny_catalog, sft_split) -> Kit:
    """Reverse-reasoning records for every training sample of the tiny fixture."""
    return make_kit(tiny_catalog, sft_split.train, sft_split.profiles.values())


@pytest.fixture
def varied_kit() -> Kit:
    return make_kit(Catalog(VARIED_ITEMS), VARIED_SAMPLES)


@pytest.fixture
def policy_for():
    """policy_for(kit, hidden=32) -> a fresh tiny Qwen3 over the kit's tokenizer (seeded)."""
    return lambda kit, hidden=32: make_model(kit.tokenizer, hidden)
