"""The inference layer: any bundle -> a Recommender, from the bundle alone (DESIGN.md §2).

What serving, nearline jobs and `reasonrec recommend` import. It reads
everything it needs from the bundle (the manifest records the generation
settings) and imports no trainer, data fetcher, evaluator or pipeline; a test
pins the `training.*` modules it pulls in. Bundle kinds register a loader with
`@register_loader(kind)`.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from training.bundle import BundleError, load_bundle_catalog, validate_bundle
from training.catalog import Catalog
from training.data.types import Sample, UserProfile
from training.devices import resolve_device
from training.recommender import Recommender
from training.text import shorten

Loader = Callable[[Path, dict, str], Recommender]
LOADERS: dict[str, Loader] = {}
# Kinds whose loader lives in another module, imported only when such a bundle is loaded (keeps the import set small).
LOADER_MODULES = {"rechead": "training.reasoning.rechead_recommender"}


class RequestError(ValueError):
    """A recommendation request that cannot be answered as asked (empty history, unknown items, ...)."""


def register_loader(kind: str) -> Callable[[Loader], Loader]:
    """Decorator: `loader(bundle_dir, manifest, device) -> Recommender` for bundles of `kind`."""

    def deco(fn: Loader) -> Loader:
        LOADERS[kind] = fn
        return fn

    return deco


def load_recommender(bundle_dir: str | Path, device: str = "auto", beam_width: int | None = None) -> Recommender:
    """Validated bundle -> its recommender on `device` (auto|cpu|cuda). beam_width overrides the manifest's."""
    root = Path(bundle_dir)
    manifest = validate_bundle(root)
    if manifest["kind"] not in LOADERS and manifest["kind"] in LOADER_MODULES:
        importlib.import_module(LOADER_MODULES[manifest["kind"]])
    loader = LOADERS.get(manifest["kind"])
    if loader is None:
        raise BundleError(f"{root}: no loader for bundle kind {manifest['kind']!r}; known: {sorted(LOADERS)}")
    if beam_width is not None:
        manifest = {**manifest, "generation": {**manifest.get("generation", {}), "beam_width": beam_width}}
    recommender = loader(root, manifest, resolve_device(device))
    recommender.manifest = manifest
    return recommender


@register_loader("policy")
def load_policy_recommender(root: Path, manifest: dict, device: str) -> Recommender:
    """Tokenizer, HF policy, identifier scheme and catalog from the bundle; decoding settings from the manifest."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    from training.identifiers.base import load_scheme
    from training.models.policy import load_policy
    from training.models.policy_recommender import PolicyRecommender
    from training.prompts import PROMPT_LAYOUT_VERSION

    generation = manifest.get("generation") or {}
    if generation.get("prompt_layout") != PROMPT_LAYOUT_VERSION:
        raise BundleError(f"{root}: prompt layout {generation.get('prompt_layout')!r}, this reasonrec builds "
                          f"layout {PROMPT_LAYOUT_VERSION}; retrain the bundle")
    tokenizer = AutoTokenizer.from_pretrained(str(root / "tokenizer"))
    model = load_policy(root / "policy").to(device)
    return PolicyRecommender(model, tokenizer, load_scheme(root / "identifiers"), load_bundle_catalog(root),
                             generation["beam_width"], generation["max_prompt_tokens"], name=manifest["name"],
                             backend=generation["backend"])


@register_loader("baseline")
def load_baseline_recommender(root: Path, manifest: dict, device: str) -> Recommender:
    from training.baselines.registry import load_baseline

    return load_baseline(root / "model", load_bundle_catalog(root), device)


def max_history(recommender: Recommender) -> int:
    """How many past items a request keeps (the manifest's generation.max_history, else 20)."""
    manifest = getattr(recommender, "manifest", None) or {}
    return int((manifest.get("generation") or {}).get("max_history", 20))


def build_request(catalog: Catalog, history: Sequence[str], user_id: str = "anonymous",
                  profile: UserProfile | None = None, keep: int = 20) -> Sample:
    """A Sample from raw item ids (oldest first): empty or unknown histories are refused, the last `keep` kept."""
    items = tuple(str(i).strip() for i in history if str(i).strip())
    if not items:
        raise RequestError("the history is empty: give at least one item id")
    unknown = [i for i in items if i not in catalog]
    if unknown:
        shown = ", ".join(shorten(i) for i in unknown[:5])
        raise RequestError(f"{len(unknown)} unknown item id(s) in the history: {shown}")
    return Sample(f"{user_id}:{len(items)}", user_id, items[-keep:], "", profile)
