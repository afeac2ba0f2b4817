"""Split files: written once, hashed, refused when altered or incomplete."""

from __future__ import annotations

import json
import os

import pytest

from training.data.split import build_split
from training.data.store import SplitIntegrityError, load_split, write_split
from training.data.types import Interaction, ItemInfo, RawDataset, UserProfile

ROWS = [("1", "1", 100), ("2", "1", 100), ("1", "2", 200), ("10", "3", 200), ("2", "9", 300),
        ("2", "10", 300), ("1", "3", 400), ("10", "1", 500), ("1", "9", 600), ("2", "3", 700)]
FILES = ["train.jsonl", "valid.jsonl", "test.jsonl", "sequences.json", "profiles.json", "meta.json"]


def _split(protocol: str = "temporal"):
    items = {i: ItemInfo(i, f"Film {i}") for _, i, _ in ROWS}
    users = {"1": UserProfile("1", "24", "M", "technician"), "2": UserProfile("2", "53", "F", "other")}
    return build_split(RawDataset("hand", [Interaction(*r) for r in ROWS], items, users), protocol)


def test_round_trip_is_equal(tmp_path):
    split = _split()
    digest = write_split(split, tmp_path / "s")
    assert split.content_hash == digest and len(digest) == 64
    loaded = load_split(tmp_path / "s")
    assert loaded == split
    assert loaded.test[0].profile == UserProfile("2", "53", "F", "other")
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    assert meta["counts"] == {"train": 5, "valid": 1, "test": 1}
    assert meta["dropped_empty_history"] == {"train": 3, "valid": 0, "test": 0}


def test_round_trip_with_an_empty_part(tmp_path):
    # leave-one-out where no user has 3 interactions: the valid part is empty
    split = build_split(RawDataset("two", [Interaction("1", "1", 1), Interaction("1", "2", 2)],
                                   {"1": ItemInfo("1", "A"), "2": ItemInfo("2", "B")}), "loo")
    assert split.valid == [] and split.train == []
    write_split(split, tmp_path / "s")
    assert load_split(tmp_path / "s") == split


def test_hash_is_stable_across_two_writes(tmp_path):
    assert write_split(_split(), tmp_path / "a") == write_split(_split(), tmp_path / "b")
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_hash_depends_on_content(tmp_path):
    assert write_split(_split("temporal"), tmp_path / "a") != write_split(_split("loo"), tmp_path / "b")


def test_second_write_of_same_content_does_not_rewrite(tmp_path):
    folder = tmp_path / "s"
    digest = write_split(_split(), folder)
    old = 1_000_000_000
    for name in FILES:
        os.utime(folder / name, (old, old))
    again = _split()
    assert write_split(again, folder) == digest
    assert again.content_hash == digest
    assert all((folder / name).stat().st_mtime == old for name in FILES)


def test_tampered_file_is_refused(tmp_path):
    folder = tmp_path / "s"
    write_split(_split(), folder)
    path = folder / "test.jsonl"
    path.write_text(path.read_text().replace('"target":"3"', '"target":"2"'))
    with pytest.raises(SplitIntegrityError, match="sha256"):
        load_split(folder)
    assert load_split(folder, verify=False).test[0].target == "2"


def test_missing_files_are_named(tmp_path):
    folder = tmp_path / "s"
    write_split(_split(), folder)
    (folder / "valid.jsonl").unlink()
    (folder / "sequences.json").unlink()
    with pytest.raises(SplitIntegrityError, match=r"valid\.jsonl.*sequences\.json"):
        load_split(folder)


def test_missing_folder_is_refused(tmp_path):
    with pytest.raises(SplitIntegrityError, match="meta.json"):
        load_split(tmp_path / "nowhere")
