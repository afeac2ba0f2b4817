"""A tiny policy bundle on disk, written the way `training.pipeline.policy_files` writes one (tests, benchmarks)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import make_tiny_dataset, make_tiny_policy
from training.bundle import write_bundle
from training.catalog import Catalog
from training.pipeline import policy_files
from training.prompts import PROMPT_LAYOUT_VERSION


def tiny_generation(beam_width: int = 4) -> dict:
    """The manifest's `generation` section of the tiny bundle."""
    return {"identifier_scheme": "sid", "prompt_layout": PROMPT_LAYOUT_VERSION, "max_history": 20,
            "beam_width": beam_width, "backend": "batched", "max_prompt_tokens": 480}


def write_tiny_policy_bundle(root: Path, hidden: int = 64, heads: int = 2, beam_width: int = 4) -> Path:
    """An untrained tiny Qwen3 over 2-level SIDs of 12 items, as a policy bundle at `root`.

    hidden / heads >= 32: vLLM's CPU attention refuses head_dim 16 (DESIGN.md §8).
    """
    catalog = Catalog(make_tiny_dataset().items.values())
    model, tokenizer, scheme = make_tiny_policy(catalog, hidden=hidden, heads=heads)
    write_bundle(root, policy_files(catalog, scheme, tokenizer, model), "policy", "tiny", {"name": "tiny"}, {},
                 generation=tiny_generation(beam_width))
    return root
