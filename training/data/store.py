"""Split files: written once, with a sha256 over their canonical content.

Layout of a split folder:
  train.jsonl, valid.jsonl, test.jsonl   one sample per line
  sequences.json                          {"full": {user: [items]}, "train": {...}}
  profiles.json                           {user: {age, gender, occupation}}
  meta.json                               protocol, counts, dropped, sha256
Every model reads the same files; a folder whose content no longer matches
its hash is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from training.data.split import SplitData
from training.data.types import Sample, UserProfile

PARTS = ("train", "valid", "test")


class SplitIntegrityError(RuntimeError):
    """A split folder is incomplete or its content does not match its recorded hash."""


def _sample_line(s: Sample) -> str:
    return json.dumps({"sample_id": s.sample_id, "user_id": s.user_id, "history": list(s.history),
                       "target": s.target}, separators=(",", ":"))


def _canonical_texts(split: SplitData) -> dict[str, str]:
    texts = {p: "\n".join(_sample_line(s) for s in getattr(split, p)) + "\n" for p in PARTS}
    texts["sequences"] = json.dumps({"full": split.sequences, "train": split.train_sequences},
                                    sort_keys=True, separators=(",", ":"))
    return texts


def hash_texts(texts: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(texts):
        digest.update(name.encode())
        digest.update(texts[name].encode())
    return digest.hexdigest()


def write_split(split: SplitData, folder: Path) -> str:
    """Write the split files (skipped when the same content is already there); returns the sha256."""
    folder = Path(folder)
    texts = _canonical_texts(split)
    content_hash = hash_texts(texts)
    meta_path = folder / "meta.json"
    if meta_path.exists() and json.loads(meta_path.read_text()).get("sha256") == content_hash:
        split.content_hash = content_hash
        return content_hash
    folder.mkdir(parents=True, exist_ok=True)
    for part in PARTS:
        (folder / f"{part}.jsonl").write_text(texts[part])
    (folder / "sequences.json").write_text(texts["sequences"])
    profiles = {u: asdict(p) for u, p in split.profiles.items()}
    (folder / "profiles.json").write_text(json.dumps(profiles, sort_keys=True))
    meta = {"protocol": split.protocol, "sha256": content_hash,
            "counts": {p: len(getattr(split, p)) for p in PARTS},
            "n_users": len(split.sequences), "dropped_empty_history": split.dropped_empty_history}
    meta_path.write_text(json.dumps(meta, indent=2))
    split.content_hash = content_hash
    return content_hash


def _read_samples(text: str, profiles: dict[str, UserProfile]) -> list[Sample]:
    out = []
    for line in text.splitlines():
        if not line.strip():  # an empty part is written as a lone "\n"
            continue
        r = json.loads(line)
        out.append(Sample(r["sample_id"], r["user_id"], tuple(r["history"]), r["target"],
                          profiles.get(r["user_id"])))
    return out


def load_split(folder: Path, verify: bool = True) -> SplitData:
    folder = Path(folder)
    missing = [n for n in (*(f"{p}.jsonl" for p in PARTS), "sequences.json", "meta.json")
               if not (folder / n).exists()]
    if missing:
        raise SplitIntegrityError(f"split folder {folder} lacks {missing}; run `reasonrec data split`")
    meta = json.loads((folder / "meta.json").read_text())
    texts = {p: (folder / f"{p}.jsonl").read_text() for p in PARTS}
    texts["sequences"] = (folder / "sequences.json").read_text()
    if verify and hash_texts(texts) != meta["sha256"]:
        raise SplitIntegrityError(f"split files in {folder} do not match their sha256 in meta.json")
    profiles_path = folder / "profiles.json"
    raw_profiles = json.loads(profiles_path.read_text()) if profiles_path.exists() else {}
    profiles = {u: UserProfile(**p) for u, p in raw_profiles.items()}
    seqs = json.loads(texts["sequences"])
    parts = {p: _read_samples(texts[p], profiles) for p in PARTS}
    return SplitData(meta["protocol"], parts["train"], parts["valid"], parts["test"], seqs["full"],
                     seqs["train"], profiles, meta.get("dropped_empty_history", {}), meta["sha256"])
