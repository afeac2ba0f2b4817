"""Split files: written once, with a sha256 over their canonical content.

Layout of a split folder:
  train.jsonl, valid.jsonl, test.jsonl   one sample per line
  sequences.json                          {"full": {user: [items]}, "train": {...}}
  profiles.json                           {user: {age, gender, occupation}}
  users.json                              per-user index: full sequence + profile (for `recommend --user`)
  meta.json                               protocol, counts, dropped, sha256, source_key, users_sha256
Every model reads the same files; a folder whose content no longer matches
its hash is refused. The sha256 covers samples, sequences and profiles;
`source_key` is a hash of the raw files and settings that made the split, so
a split is reused only for the same inputs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from training.data.split import SplitData
from training.data.types import Sample, UserProfile

PARTS = ("train", "valid", "test")
USERS_FILE = "users.json"


class SplitIntegrityError(RuntimeError):
    """A split folder is incomplete or its content does not match its recorded hash."""


def _sample_line(s: Sample) -> str:
    return json.dumps({"sample_id": s.sample_id, "user_id": s.user_id, "history": list(s.history),
                       "target": s.target}, separators=(",", ":"))


def _canonical_texts(split: SplitData) -> dict[str, str]:
    texts = {p: "\n".join(_sample_line(s) for s in getattr(split, p)) + "\n" for p in PARTS}
    texts["sequences"] = json.dumps({"full": split.sequences, "train": split.train_sequences},
                                    sort_keys=True, separators=(",", ":"))
    texts["profiles"] = json.dumps({u: asdict(p) for u, p in split.profiles.items()}, sort_keys=True)
    return texts


def hash_texts(texts: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(texts):
        digest.update(name.encode())
        digest.update(texts[name].encode())
    return digest.hexdigest()


def _users_text(split: SplitData, content_hash: str) -> str:
    users = {u: {"sequence": seq, "profile": asdict(split.profiles[u]) if u in split.profiles else None}
             for u, seq in split.sequences.items()}
    return json.dumps({"split_sha256": content_hash, "users": users}, sort_keys=True, separators=(",", ":"))


def write_split(split: SplitData, folder: Path, source_key: str = "") -> str:
    """Write the split files, meta.json last (so a folder without it is incomplete); returns the sha256."""
    folder = Path(folder)
    texts = _canonical_texts(split)
    content_hash = hash_texts(texts)
    meta = read_meta(folder)
    if meta and meta.get("sha256") == content_hash and meta.get("source_key") == source_key \
            and (folder / USERS_FILE).is_file():
        split.content_hash = content_hash
        return content_hash
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").unlink(missing_ok=True)
    for part in PARTS:
        (folder / f"{part}.jsonl").write_text(texts[part])
    (folder / "sequences.json").write_text(texts["sequences"])
    (folder / "profiles.json").write_text(texts["profiles"])
    users = _users_text(split, content_hash)
    (folder / USERS_FILE).write_text(users)
    meta = {"protocol": split.protocol, "sha256": content_hash, "source_key": source_key,
            "users_sha256": hashlib.sha256(users.encode()).hexdigest(),
            "counts": {p: len(getattr(split, p)) for p in PARTS},
            "n_users": len(split.sequences), "dropped_empty_history": split.dropped_empty_history}
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    split.content_hash = content_hash
    return content_hash


def read_meta(folder: Path) -> dict | None:
    """meta.json of a split folder, None when absent or unreadable."""
    try:
        meta = json.loads((Path(folder) / "meta.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return meta if isinstance(meta, dict) else None


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
    missing = [n for n in (*(f"{p}.jsonl" for p in PARTS), "sequences.json", "profiles.json", "meta.json")
               if not (folder / n).exists()]
    if missing:
        raise SplitIntegrityError(f"split folder {folder} lacks {missing}; `reasonrec data split` rewrites it")
    meta = read_meta(folder) or {}
    texts = {p: (folder / f"{p}.jsonl").read_text() for p in PARTS}
    texts["sequences"] = (folder / "sequences.json").read_text()
    texts["profiles"] = (folder / "profiles.json").read_text()
    if verify and hash_texts(texts) != meta.get("sha256"):
        raise SplitIntegrityError(f"split files in {folder} do not match their sha256 in meta.json; "
                                  "`reasonrec data split` rewrites them")
    profiles = {u: UserProfile(**p) for u, p in json.loads(texts["profiles"]).items()}
    seqs = json.loads(texts["sequences"])
    parts = {p: _read_samples(texts[p], profiles) for p in PARTS}
    return SplitData(meta["protocol"], parts["train"], parts["valid"], parts["test"], seqs["full"],
                     seqs["train"], profiles, meta.get("dropped_empty_history", {}), meta["sha256"])


def load_user_record(folder: Path, user_id: str) -> tuple[list[str], UserProfile | None]:
    """(full item sequence, profile) of one user from the split's per-user index, hash-checked.

    Raises SplitIntegrityError for a missing or altered index, KeyError for an unknown user.
    """
    folder = Path(folder)
    meta, path = read_meta(folder), folder / USERS_FILE
    if meta is None or not path.is_file():
        raise SplitIntegrityError(f"no user index in {folder}; `reasonrec data split` writes it")
    raw = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != meta.get("users_sha256"):
        raise SplitIntegrityError(f"{path} does not match its sha256 in meta.json; `reasonrec data split` rewrites it")
    record = json.loads(raw)["users"].get(user_id)
    if record is None:
        raise KeyError(user_id)
    profile = UserProfile(**record["profile"]) if record["profile"] else None
    return record["sequence"], profile
