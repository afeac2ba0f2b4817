"""Dataset adapters: raw files -> `RawDataset` (one interface, several formats).

- `ml100k_atomic`: RecBole atomic files (`.inter`, `.item`, `.user`), the default.
- `movielens_local`: MovieLens `u.data`/`u.item`/`u.user` (tab / pipe) or
  `ratings.dat`/`movies.dat`/`users.dat` (`::`) folders.
- `amazon2023`: Amazon Reviews 2023 JSONL (`<cat>.jsonl` reviews + `meta_<cat>.jsonl`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from training.data.types import Interaction, ItemInfo, RawDataset, UserProfile

ADAPTERS: dict[str, Callable[[Path], RawDataset]] = {}
_YEAR_IN_TITLE = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")
ML_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
             "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
             "Romance", "Sci-Fi", "Thriller", "War", "Western"]


class DatasetFormatError(ValueError):
    """A data file is missing or does not have the expected columns."""


def register_adapter(name: str):
    def deco(fn):
        ADAPTERS[name] = fn
        return fn
    return deco


def load_dataset(fmt: str, path: Path) -> RawDataset:
    """Load `path` with the adapter `fmt`; a malformed file gives DatasetFormatError, never a bare crash."""
    if fmt not in ADAPTERS:
        raise DatasetFormatError(f"unknown dataset format {fmt!r}; known: {sorted(ADAPTERS)}")
    try:
        return ADAPTERS[fmt](Path(path))
    except (IndexError, KeyError, ValueError) as err:
        if isinstance(err, DatasetFormatError):
            raise
        raise DatasetFormatError(f"{path}: malformed {fmt} data ({type(err).__name__}: {err})") from err


def _require(path: Path) -> Path:
    if not path.exists():
        raise DatasetFormatError(f"missing data file: {path}")
    return path


def _read_rows(path: Path, sep: str, encoding: str = "utf-8") -> list[list[str]]:
    text = _require(path).read_text(encoding=encoding, errors="replace")
    return [line.split(sep) for line in text.splitlines() if line.strip()]


def _split_title_year(title: str) -> tuple[str, str]:
    match = _YEAR_IN_TITLE.match(title.strip())
    return (match.group(1), match.group(2)) if match else (title.strip(), "")


@register_adapter("ml100k_atomic")
def load_ml100k_atomic(folder: Path) -> RawDataset:
    """RecBole atomic files: header row `field:type`, tab separated."""
    name = folder.name
    inter = _read_rows(folder / f"{name}.inter", "\t")[1:]
    interactions = [Interaction(r[0], r[1], int(float(r[3]))) for r in inter]
    items = {}
    for r in _read_rows(folder / f"{name}.item", "\t")[1:]:
        r = r + [""] * (4 - len(r))
        items[r[0]] = ItemInfo(r[0], r[1].strip(), r[2].strip(), tuple(r[3].split()))
    users = {}
    user_file = folder / f"{name}.user"
    if user_file.exists():
        for r in _read_rows(user_file, "\t")[1:]:
            users[r[0]] = UserProfile(r[0], r[1], r[2], r[3])
    return RawDataset(name, interactions, items, users)


def _movielens_items_pipe(path: Path) -> dict[str, ItemInfo]:
    items = {}
    for r in _read_rows(path, "|", encoding="latin-1"):
        title, year = _split_title_year(r[1])
        flags = r[5:5 + len(ML_GENRES)]
        genres = tuple(g for g, f in zip(ML_GENRES, flags, strict=False) if f.strip() == "1")
        items[r[0]] = ItemInfo(r[0], title, year, genres)
    return items


def _movielens_items_colon(path: Path) -> dict[str, ItemInfo]:
    items = {}
    for r in _read_rows(path, "::", encoding="latin-1"):
        title, year = _split_title_year(r[1])
        items[r[0]] = ItemInfo(r[0], title, year, tuple(g for g in r[2].split("|") if g))
    return items


@register_adapter("movielens_local")
def load_movielens_local(folder: Path) -> RawDataset:
    """`u.data` (user item rating ts, tab) or `ratings.dat` (user::item::rating::ts)."""
    if (folder / "u.data").exists():
        interactions = [Interaction(r[0], r[1], int(r[3])) for r in _read_rows(folder / "u.data", "\t")]
        items = _movielens_items_pipe(folder / "u.item")
        users = {r[0]: UserProfile(r[0], r[1], r[2], r[3])
                 for r in _read_rows(folder / "u.user", "|")} if (folder / "u.user").exists() else {}
    elif (folder / "ratings.dat").exists():
        interactions = [Interaction(r[0], r[1], int(r[3])) for r in _read_rows(folder / "ratings.dat", "::")]
        items = _movielens_items_colon(folder / "movies.dat")
        users = {r[0]: UserProfile(r[0], r[2], r[1], r[3])
                 for r in _read_rows(folder / "users.dat", "::")} if (folder / "users.dat").exists() else {}
    else:
        raise DatasetFormatError(f"{folder} holds neither u.data nor ratings.dat")
    return RawDataset(folder.name, interactions, items, users)


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(_require(path).read_text().splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DatasetFormatError(f"{path}:{n}: not valid JSON ({err.msg})") from None
    return rows


@register_adapter("amazon2023")
def load_amazon2023(folder: Path) -> RawDataset:
    """Amazon Reviews 2023: reviews (`user_id`, `parent_asin`, `timestamp` in ms) + meta (`title`, `categories`)."""
    meta_files = sorted(folder.glob("meta_*.jsonl"))
    if not meta_files:
        raise DatasetFormatError(f"{folder} has no meta_<category>.jsonl file")
    meta = meta_files[0]
    reviews = folder / (meta.name.removeprefix("meta_"))
    items = {}
    for r in _read_jsonl(meta):
        asin = r["parent_asin"]
        items[asin] = ItemInfo(asin, (r.get("title") or asin).strip(), "", tuple(r.get("categories") or ()))
    interactions = [
        Interaction(r["user_id"], r["parent_asin"], int(r["timestamp"]) // 1000)
        for r in _read_jsonl(reviews)
    ]
    for it in interactions:
        items.setdefault(it.item_id, ItemInfo(it.item_id, it.item_id))
    return RawDataset(meta.stem.removeprefix("meta_"), interactions, items, {})
