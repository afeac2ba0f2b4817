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
LOADER_MODULES = {"rechead": "training.reasoning.rechead_recommender", "r2ec": "training.reasoning.r2ec_recommender"}
MODES = ("direct", "reasoning")


class RequestError(ValueError):
    """A recommendation request that cannot be answered as asked (empty history, unknown items, ...)."""


def register_loader(kind: str) -> Callable[[Loader], Loader]:
    """Decorator: `loader(bundle_dir, manifest, device) -> Recommender` for bundles of `kind`."""

    def deco(fn: Loader) -> Loader:
        LOADERS[kind] = fn
        return fn

    return deco


def load_recommender(bundle_dir: str | Path, device: str = "auto", beam_width: int | None = None,
                     mode: str = "direct", pass_k: int | None = None) -> Recommender:
    """Validated bundle -> its recommender on `device` (auto|cpu|cuda). beam_width overrides the manifest's.

    mode "direct": the loader registered for the bundle's kind. mode "reasoning": a policy bundle trained with
    reasoning SFT, as a `ReasoningRecommender` (CoT, then the trie beam; it also has `reason`), decoding as its
    manifest's `generation.reasoning` says, or with GREAM's Pass@K sampling when pass_k = K is given.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {str(mode)[:40]!r}; choose one of {list(MODES)}")
    if pass_k is not None and mode != "reasoning":
        raise ValueError("pass_k applies to reasoning mode only")
    root = Path(bundle_dir)
    manifest = validate_bundle(root)
    if beam_width is not None:
        manifest = {**manifest, "generation": {**manifest.get("generation", {}), "beam_width": beam_width}}
    if mode == "reasoning":
        recommender = load_reasoning_recommender(root, manifest, resolve_device(device), pass_k)
    else:
        recommender = _loader_for(root, manifest["kind"])(root, manifest, resolve_device(device))
    recommender.manifest = manifest
    return recommender


def _loader_for(root: Path, kind: str) -> Loader:
    """The loader registered for `kind`, importing its module first when it lives elsewhere."""
    if kind not in LOADERS and kind in LOADER_MODULES:
        importlib.import_module(LOADER_MODULES[kind])
    loader = LOADERS.get(kind)
    if loader is None:
        raise BundleError(f"{root}: no loader for bundle kind {kind!r}; known: {sorted(LOADERS)}")
    return loader


def load_policy_text(root: Path, manifest: dict):
    """(tokenizer, identifier scheme, catalog) of a policy bundle of the current prompt layout, without weights
    (for engines that load `policy/` themselves, e.g. vLLM)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    from training.identifiers.base import load_scheme
    from training.prompts import PROMPT_LAYOUT_VERSION

    generation = manifest.get("generation") or {}
    if generation.get("prompt_layout") != PROMPT_LAYOUT_VERSION:
        raise BundleError(f"{root}: prompt layout {generation.get('prompt_layout')!r}, this reasonrec builds "
                          f"layout {PROMPT_LAYOUT_VERSION}; retrain the bundle")
    tokenizer = AutoTokenizer.from_pretrained(str(root / "tokenizer"))
    return tokenizer, load_scheme(root / "identifiers"), load_bundle_catalog(root)


def _load_policy_parts(root: Path, manifest: dict, device: str):
    """(tokenizer, model on device, identifier scheme, catalog) of a policy bundle of the current prompt layout."""
    from training.models.policy import load_policy

    tokenizer, scheme, catalog = load_policy_text(root, manifest)
    return tokenizer, load_policy(root / "policy").to(device), scheme, catalog


@register_loader("policy")
def load_policy_recommender(root: Path, manifest: dict, device: str) -> Recommender:
    """Tokenizer, HF policy, identifier scheme and catalog from the bundle; decoding settings from the manifest."""
    from training.models.policy_recommender import PolicyRecommender

    generation = manifest.get("generation") or {}
    tokenizer, model, scheme, catalog = _load_policy_parts(root, manifest, device)
    return PolicyRecommender(model, tokenizer, scheme, catalog, generation["beam_width"],
                             generation["max_prompt_tokens"], name=manifest["name"], backend=generation["backend"])


def reasoning_entry(root: Path, manifest: dict) -> dict:
    """The manifest's `generation.reasoning` of a policy bundle trained for reasoning mode; BundleError else."""
    from training.prompts import REASONING_LAYOUT_VERSION

    if manifest.get("kind") != "policy":
        raise BundleError(f"{root}: a {manifest.get('kind')!r} bundle has no reasoning mode; it needs a policy "
                          "bundle trained with reasoning.enabled=true")
    entry = (manifest.get("generation") or {}).get("reasoning")
    if not isinstance(entry, dict):
        raise BundleError(f"{root}: this policy bundle was not trained for reasoning mode (its manifest has no "
                          "generation.reasoning); use mode direct, or train with reasoning.enabled=true")
    if entry.get("layout") != REASONING_LAYOUT_VERSION:
        raise BundleError(f"{root}: reasoning layout {entry.get('layout')!r}, this reasonrec builds layout "
                          f"{REASONING_LAYOUT_VERSION}; retrain the bundle")
    return entry


def reasoning_decode_settings(manifest: dict, pass_k: int | None = None):
    """`ReasoningDecodeSettings` from the manifest (`generation.reasoning` + beam width); pass_k = K switches to
    GREAM's Pass@K sampling (K CoTs at temperature 0.7, top-p 0.9), other settings kept."""
    from training.reasoning_sft.recommender import ReasoningDecodeSettings

    generation = manifest["generation"]
    entry = generation["reasoning"]
    settings = {key: entry[key] for key in ("n_cots", "temperature", "top_p", "max_think_tokens",
                                            "max_total_tokens", "seed")}
    settings["beam_width"] = generation["beam_width"]
    if pass_k is None:
        return ReasoningDecodeSettings(**settings)
    return ReasoningDecodeSettings.pass_at(pass_k, **{k: v for k, v in settings.items()
                                                     if k not in ("n_cots", "temperature", "top_p")})


def load_reasoning_recommender(root: Path, manifest: dict, device: str, pass_k: int | None = None) -> Recommender:
    """A reasoning-SFT policy bundle as a `ReasoningRecommender` (imported only here, for mode "reasoning")."""
    reasoning_entry(root, manifest)
    from training.reasoning_sft.recommender import ReasoningRecommender

    tokenizer, model, scheme, catalog = _load_policy_parts(root, manifest, device)
    return ReasoningRecommender(model, tokenizer, scheme, catalog, reasoning_decode_settings(manifest, pass_k),
                                name=f"{manifest['name']} (reasoning)")


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
