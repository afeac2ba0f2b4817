"""A deterministic fake text encoder and a tiny split, so Rechead tests run without MiniLM."""

from __future__ import annotations

import pytest

from tests.hash_encoder import HashEncoder


@pytest.fixture
def hash_encoder() -> HashEncoder:
    return HashEncoder()


@pytest.fixture
def tiny_split(tiny_dataset):
    from training.data.split import build_split

    return build_split(tiny_dataset, "temporal", 20)
