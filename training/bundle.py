"""The artifact bundle: the one contract between training and serving (DESIGN.md §2).

    <bundle>/manifest.json   schema_version, bundle_version (content hash), kind, name,
                             dataset (+ split sha256), identifier scheme, model info, metrics
    <bundle>/catalog.json    every catalog item
    <bundle>/identifiers/    the identifier scheme (policy bundles)
    <bundle>/tokenizer/      HF fast tokenizer (policy bundles)
    <bundle>/policy/         HF-format causal LM, loadable by vLLM (policy bundles)
    <bundle>/model/          baseline weights + config (baseline bundles)

`load_bundle` validates first and refuses a bundle with a clear message.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from training.catalog import Catalog

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
REQUIRED = {
    "policy": ["catalog.json", "identifiers/scheme.json", "tokenizer", "policy/config.json"],
    "baseline": ["catalog.json", "model"],
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


def write_manifest(root: Path, kind: str, name: str, dataset: dict, model: dict,
                   identifier: dict | None = None, metrics: dict | None = None) -> dict:
    """Write manifest.json after every other file of the bundle is in place."""
    if kind not in REQUIRED:
        raise ValueError(f"unknown bundle kind {kind!r}; known: {sorted(REQUIRED)}")
    manifest = {
        "schema_version": SCHEMA_VERSION, "bundle_version": compute_bundle_version(root), "kind": kind,
        "name": name, "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "dataset": dataset, "identifier": identifier, "model": model, "metrics": metrics or {},
    }
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def read_manifest(root: Path) -> dict:
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise BundleError(f"{root} is not a bundle: {MANIFEST} is missing")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise BundleError(f"{path} is not valid JSON: {err.msg}") from None


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
    """Record evaluation metrics in the manifest (the content hash does not cover the manifest)."""
    manifest = read_manifest(root)
    manifest["metrics"] = {**manifest.get("metrics", {}), **metrics}
    (Path(root) / MANIFEST).write_text(json.dumps(manifest, indent=2))


def load_bundle_catalog(root: Path) -> Catalog:
    return Catalog.load(Path(root) / "catalog.json")
