"""A fake sentence encoder for tests: deterministic 384-d vectors, no model download."""

from __future__ import annotations

import hashlib

import numpy as np

from training.models.text_encoder import EMBED_DIM


class HashEncoder:
    """384-d vectors seeded by each text's sha256: the same text always gives the same vector. Counts texts."""

    def __init__(self) -> None:
        self.texts_seen = 0

    def encode(self, sentences, **kwargs):
        self.texts_seen += len(sentences)
        rows = [np.random.default_rng(int.from_bytes(hashlib.sha256(s.encode()).digest()[:8], "little"))
                .standard_normal(EMBED_DIM) for s in sentences]
        return np.stack(rows).astype(np.float32)
