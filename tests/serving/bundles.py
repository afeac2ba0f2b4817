"""Tiny bundles for serving tests, written in seconds: a random policy (direct mode) and a random Rechead
(reasoning mode) over the 12-item tiny catalog, plus a deterministic fake text encoder (no MiniLM)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import make_tiny_dataset, make_tiny_policy
from tests.hash_encoder import HashEncoder
from training.bundle import write_bundle
from training.catalog import Catalog
from training.models.text_encoder import EMBED_DIM, MODEL_NAME
from training.pipeline import policy_files
from training.prompts import PROMPT_LAYOUT_VERSION

POLICY_GENERATION = {"identifier_scheme": "sid", "prompt_layout": PROMPT_LAYOUT_VERSION, "max_history": 20,
                     "beam_width": 4, "backend": "batched", "max_prompt_tokens": 480}




def tiny_catalog() -> Catalog:
    return Catalog(make_tiny_dataset().items.values())


def write_policy_bundle(root: Path, name: str = "tiny") -> Path:
    """A policy bundle as `training.pipeline.policy_files` writes one, from the random tiny policy."""
    catalog = tiny_catalog()
    model, tokenizer, scheme = make_tiny_policy(catalog)
    write_bundle(root, policy_files(catalog, scheme, tokenizer, model), "policy", name, {"name": "tiny"}, {},
                 generation=POLICY_GENERATION)
    return root


def write_rechead_bundle(root: Path, encoder: HashEncoder, cot: str = "programmatic", seed: int = 0,
                         max_history: int = 20) -> Path:
    """A rechead bundle (random Rechead, d=16) whose item texts are embedded by `encoder`."""
    import torch

    from training.models.rechead import Rechead
    from training.models.text_encoder import encode_texts
    from training.reasoning.features import FEATURES_VERSION, teacher_spec
    from training.reasoning.rechead_recommender import save_rechead_files

    catalog = tiny_catalog()
    item_text = encode_texts(catalog.texts(), model=encoder, show_progress=False)
    torch.manual_seed(seed)
    model = Rechead(torch.from_numpy(item_text), dim=16, n_layers=1, n_heads=2, dropout=0.0).eval()

    def fill(tmp: Path) -> None:
        catalog.save(tmp / "catalog.json")
        save_rechead_files(tmp, model, catalog)

    features = {"version": FEATURES_VERSION, "cot": cot, "text_encoder": MODEL_NAME, "text_dim": EMBED_DIM,
                "teacher": teacher_spec(cot)}
    write_bundle(root, fill, "rechead", f"rechead_{cot}", {"name": "tiny"}, {"architecture": "Rechead"},
                 features=features, generation={"max_history": max_history})
    return root
