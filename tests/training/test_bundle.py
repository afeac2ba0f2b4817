"""Bundles: a manifest with a content hash; altered or incomplete bundles are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.bundle import (
    MANIFEST,
    SCHEMA_VERSION,
    BundleError,
    compute_bundle_version,
    load_bundle_catalog,
    read_manifest,
    update_metrics,
    validate_bundle,
    write_manifest,
)
from training.catalog import Catalog
from training.data.types import ItemInfo


def _baseline_bundle(root: Path) -> dict:
    root.mkdir(parents=True)
    catalog = Catalog([ItemInfo("1", "Toy Story", "1995"), ItemInfo("2", "GoldenEye", "1995")])
    catalog.save(root / "catalog.json")
    (root / "model").mkdir()
    (root / "model" / "weights.bin").write_bytes(b"\x00\x01\x02")
    return write_manifest(root, "baseline", "pop", dataset={"name": "ml-100k", "split_sha256": "ab" * 32},
                          model={"type": "pop"})


def _edit_manifest(root: Path, **changes) -> None:
    manifest = json.loads((root / MANIFEST).read_text())
    manifest.update(changes)
    (root / MANIFEST).write_text(json.dumps(manifest))


def test_written_bundle_validates(tmp_path):
    root = tmp_path / "b"
    written = _baseline_bundle(root)
    manifest = validate_bundle(root)
    assert manifest == written == read_manifest(root)
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["kind"] == "baseline" and manifest["name"] == "pop"
    assert manifest["bundle_version"] == compute_bundle_version(root)
    assert len(manifest["bundle_version"]) == 16
    assert manifest["metrics"] == {}
    assert load_bundle_catalog(root).item_ids == ["1", "2"]


def test_bundle_version_is_stable_and_ignores_the_manifest(tmp_path):
    _baseline_bundle(tmp_path / "a")
    _baseline_bundle(tmp_path / "b")
    assert compute_bundle_version(tmp_path / "a") == compute_bundle_version(tmp_path / "b")


def test_changed_file_is_refused(tmp_path):
    root = tmp_path / "b"
    _baseline_bundle(root)
    (root / "model" / "weights.bin").write_bytes(b"\x00\x01\x03")
    with pytest.raises(BundleError, match="bundle_version mismatch"):
        validate_bundle(root)
    assert validate_bundle(root, check_hash=False)["kind"] == "baseline"


def test_added_file_is_refused(tmp_path):
    root = tmp_path / "b"
    _baseline_bundle(root)
    (root / "model" / "extra.txt").write_text("x")
    with pytest.raises(BundleError, match="bundle_version mismatch"):
        validate_bundle(root)


def test_missing_directory(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        validate_bundle(tmp_path / "nowhere")


def test_missing_manifest(tmp_path):
    root = tmp_path / "b"
    _baseline_bundle(root)
    (root / MANIFEST).unlink()
    with pytest.raises(BundleError, match=r"not a bundle: manifest\.json is missing"):
        validate_bundle(root)


def test_corrupt_manifest(tmp_path):
    root = tmp_path / "b"
    _baseline_bundle(root)
    (root / MANIFEST).write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        validate_bundle(root)


def test_wrong_schema_version(tmp_path):
    root = tmp_path / "b"
    _baseline_bundle(root)
    _edit_manifest(root, schema_version=SCHEMA_VERSION + 1)
    expected = f"schema version {SCHEMA_VERSION + 1}, this reasonrec reads {SCHEMA_VERSION}"
    with pytest.raises(BundleError, match=expected):
        validate_bundle(root)


def test_unknown_kind(tmp_path):
    root = tmp_path / "b"
    _baseline_bundle(root)
    _edit_manifest(root, kind="mystery")
    with pytest.raises(BundleError, match="unknown bundle kind 'mystery'"):
        validate_bundle(root)
    with pytest.raises(ValueError, match="unknown bundle kind"):
        write_manifest(root, "mystery", "x", dataset={}, model={})


def test_missing_required_file(tmp_path):
    root = tmp_path / "b"
    _baseline_bundle(root)
    (root / "catalog.json").unlink()
    with pytest.raises(BundleError, match=r"kind 'baseline' lacks \['catalog\.json'\]"):
        validate_bundle(root)


def test_policy_bundle_lists_everything_it_lacks(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    (root / "catalog.json").write_text('{"items": []}')
    write_manifest(root, "policy", "sft", dataset={}, model={})
    with pytest.raises(BundleError, match=r"identifiers/scheme\.json.*tokenizer.*policy/config\.json"):
        validate_bundle(root)


def test_update_metrics_keeps_the_bundle_valid(tmp_path):
    root = tmp_path / "b"
    before = _baseline_bundle(root)
    update_metrics(root, {"ndcg@10": 0.05})
    update_metrics(root, {"hr@10": 0.1})
    after = validate_bundle(root)
    assert after["metrics"] == {"ndcg@10": 0.05, "hr@10": 0.1}
    assert after["bundle_version"] == before["bundle_version"]
