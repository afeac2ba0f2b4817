"""Saved form of an `ItemIndex`: a directory with `index.faiss` (faiss `write_index`) and `index.json`.

The sidecar holds the format version, kind, dim, metric, settings, the raw id <-> int map
(`ids`, `ints`, `next_id`) and HNSW tombstones. Writes go to a temp directory next to the
target, which then replaces it by rename, so a reader sees the old or the new index, never half
of one (the old directory is moved aside for the instant of the swap, then deleted).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import faiss

FORMAT_VERSION = 1
FAISS_FILE = "index.faiss"
SIDECAR_FILE = "index.json"


def write_index_dir(directory: Path, index: faiss.Index, sidecar: dict[str, Any]) -> None:
    """Write `index` (a CPU index) and `sidecar` into `directory`, replacing what was there."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".{directory.name}.tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        faiss.write_index(index, str(tmp / FAISS_FILE))
        doc = {"format_version": FORMAT_VERSION, "metric": "inner_product", "faiss_file": FAISS_FILE, **sidecar}
        (tmp / SIDECAR_FILE).write_text(json.dumps(doc, ensure_ascii=False))
        _swap_in(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(tmp: Path, directory: Path) -> None:
    """Rename `tmp` to `directory`; an existing `directory` is moved aside first and deleted after."""
    if not directory.exists():
        os.rename(tmp, directory)
        return
    old = directory.parent / f".{directory.name}.old-{uuid.uuid4().hex}"
    os.rename(directory, old)
    try:
        os.rename(tmp, directory)
    except OSError:
        os.rename(old, directory)
        raise
    shutil.rmtree(old, ignore_errors=True)


def read_index_dir(directory: Path) -> tuple[faiss.Index, dict[str, Any]]:
    """(faiss index, sidecar dict) from a directory written by `write_index_dir`."""
    directory = Path(directory)
    path = directory / SIDECAR_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no item index at {directory} (missing {SIDECAR_FILE})")
    doc = json.loads(path.read_text())
    if doc.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported item index format version {doc.get('format_version')!r}, "
                         f"this reasonrec reads version {FORMAT_VERSION}")
    index = faiss.read_index(str(directory / doc["faiss_file"]))
    return index, doc
