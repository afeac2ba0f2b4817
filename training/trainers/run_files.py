"""Files a training run writes, each written whole or not at all (temporary name, then rename)."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def write_jsonl(path: Path, records: list[dict]) -> None:
    """Replace `path` with one JSON object a line."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    tmp.replace(path)


def append_jsonl(path: Path, record: dict) -> None:
    with path.open("a") as fh:
        fh.write(json.dumps(record) + "\n")


def save_atomic(obj: dict, path: Path) -> None:
    """torch.save under a temporary name, then rename: an interrupted save never leaves a truncated file."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)
