"""The artifact bundle: the one contract between training and serving (DESIGN.md §2).

    <bundle>/manifest.json   schema_version, bundle_version (content hash), kind, name,
                             dataset (+ split sha256), identifier scheme, model info, metrics
    <bundle>/catalog.json    every catalog item
    <bundle>/identifiers/    the identifier scheme (policy bundles)
    <bundle>/tokenizer/      HF fast tokenizer (policy bundles)
    <bundle>/policy/         HF-format causal LM, loadable by vLLM (policy bundles)
    <bundle>/model/          baseline weights + config (baseline bundles)
    <bundle>/rechead/        Rechead weights + config; item_embeddings.npy [N, d] (rechead bundles)
    <bundle>/r2ec/           R²ec rec-head settings; policy/ is its backbone, item_embeddings.npy its
                             item table [N, d] (r2ec bundles; training/reasoning/r2ec_recommender.py)

The manifest also records `generation` (how to build prompts and decode: identifier
scheme, prompt layout, max history, beam width, backend), `source` (a hash of the
settings that made the bundle, so a cached bundle is reused only for the same
settings) and `eval` (the evaluation settings whose metrics it may record).
`write_bundle` is the one writer (temporary folder, manifest last, rename);
`validate_bundle` refuses an incomplete or altered bundle with a clear message.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from training.catalog import Catalog

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
REQUIRED = {
    "policy": ["catalog.json", "identifiers/scheme.json", "tokenizer", "policy/config.json"],
    "baseline": ["catalog.json", "model"],
    "rechead": ["catalog.json", "rechead/config.json", "rechead/model.pt", "item_embeddings.npy"],
    "r2ec": ["catalog.json", "identifiers/scheme.json", "tokenizer", "policy/config.json", "r2ec/config.json",
             "item_embeddings.npy"],
}


class BundleError(RuntimeError):
    """A bundle is missing, incomplete, of another schema version, or altered since it was written."""


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)


def compute_bundle_version(root: Path) -> str:
    """sha256 (first 16 hex) over every file's relative path and bytes, manifest excluded."""
    digest = hashlib.sha256()
    for path in _files(root):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def register_bundle_kind(kind: str, required: list[str]) -> None:
    """Make `kind` a valid bundle kind whose folder must hold the `required` relative paths."""
    REQUIRED[kind] = list(required)


def write_manifest(root: Path, kind: str, name: str, dataset: dict, model: dict, **sections) -> dict:
    """Write manifest.json after every other file of the bundle is in place.

    sections: identifier, generation, source, eval, metrics (JSON-ready dicts or None).
    """
    if kind not in REQUIRED:
        raise ValueError(f"unknown bundle kind {kind!r}; known: {sorted(REQUIRED)}")
    manifest = {
        "schema_version": SCHEMA_VERSION, "bundle_version": compute_bundle_version(root), "kind": kind,
        "name": name, "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "dataset": dataset, "model": model, "metrics": {}, **sections,
    }
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def write_bundle(root: Path, fill: Callable[[Path], None], kind: str, name: str, dataset: dict, model: dict,
                 **sections) -> dict:
    """The one bundle writer: `fill(tmp)` writes the files, the manifest goes last, then an atomic swap.

    A stale `eval/` folder next to the bundle (metrics of the bundle it replaces) is removed.
    """
    root = Path(root)
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    fill(tmp)
    manifest = write_manifest(tmp, kind, name, dataset, model, **sections)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(root.parent / "eval", ignore_errors=True)
    tmp.rename(root)
    return manifest


def settings_hash(settings: dict) -> str:
    """sha256 (first 16 hex) of a JSON-ready settings dict, key order ignored."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def source_section(settings: dict) -> dict:
    """The manifest's `source`: the settings that made a bundle and their hash (the cache key)."""
    return {"settings_sha256": settings_hash(settings), "settings": settings}


def read_manifest(root: Path) -> dict:
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise BundleError(f"{root} is not a bundle: {MANIFEST} is missing")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleError(f"{path} is not valid JSON ({type(err).__name__})") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{path} holds a JSON {type(manifest).__name__}, not a manifest object")
    return manifest


def validate_bundle(root: Path, check_hash: bool = True) -> dict:
    """Return the manifest of a complete, unaltered bundle; raise BundleError otherwise."""
    root = Path(root)
    if not root.is_dir():
        raise BundleError(f"bundle directory {root} does not exist")
    manifest = read_manifest(root)
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise BundleError(f"{root}: schema version {manifest.get('schema_version')!r}, "
                          f"this reasonrec reads {SCHEMA_VERSION}")
    kind = manifest.get("kind")
    if kind not in REQUIRED:
        raise BundleError(f"{root}: unknown bundle kind {kind!r}")
    missing = [rel for rel in REQUIRED[kind] if not (root / rel).exists()]
    if missing:
        raise BundleError(f"{root}: bundle of kind {kind!r} lacks {missing}")
    if check_hash and compute_bundle_version(root) != manifest.get("bundle_version"):
        raise BundleError(f"{root}: files changed since the bundle was written (bundle_version mismatch)")
    return manifest


def update_metrics(root: Path, metrics: dict) -> None:
    """Record evaluation metrics in the manifest (the content hash does not cover the manifest).

    Callers record only metrics of the bundle's own split and evaluation settings (`manifest["eval"]`).
    """
    manifest = read_manifest(root)
    manifest["metrics"] = {**manifest.get("metrics", {}), **metrics}
    (Path(root) / MANIFEST).write_text(json.dumps(manifest, indent=2))


def load_bundle_catalog(root: Path) -> Catalog:
    return Catalog.load(Path(root) / "catalog.json")
