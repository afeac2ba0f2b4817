"""The SFT loop (`train_sft`): early stopping, best-weight restore, resume, refused checkpoints.

Validation goes through a scripted recommender: its i-th `rank` call returns rankings
whose NDCG@10 is the i-th scripted score, and it records the weights it was called with
(rank runs right after the epoch's training steps, so these are the epoch's weights).
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch

from training.config import SFTConfig
from training.data.types import Sample
from training.trainers.sft import CheckpointError, train_sft, validate
from training.trainers.sft_data import build_window_example

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N_VALID = 10  # scores are multiples of 1/N_VALID: round(score * N_VALID) targets ranked 1st, the rest absent


class Interrupted(Exception):
    """Stands in for a crash / Ctrl-C during validation."""


class ScriptedRecommender:
    """rank call i -> rankings whose NDCG@10 is scores[i]; raises Interrupted on call `raise_at` (0-based)."""

    def __init__(self, model, scores: list[float], raise_at: int | None = None):
        self.model, self.scores, self.raise_at = model, scores, raise_at
        self.calls = 0
        self.weights: list[dict[str, torch.Tensor]] = []

    def rank(self, samples, k, exclude=None):
        call = self.calls
        self.calls += 1
        if call == self.raise_at:
            raise Interrupted(f"interrupted at rank call {call}")
        self.weights.append({name: t.detach().clone() for name, t in self.model.state_dict().items()})
        hits = round(self.scores[call] * len(samples))
        fillers = [f"filler{i}" for i in range(k)]
        return [[s.target, *fillers[:k - 1]] if i < hits else fillers for i, s in enumerate(samples)]


@pytest.fixture
def examples(tiny_policy):
    """Six windows of 4 items (SID tokens after a BOS-like prefix), loss on items 2..4."""
    _, tokenizer, scheme = tiny_policy
    items = scheme.item_ids
    prefix = [tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.pad_token_id]
    out = []
    for start in range(6):
        window = [items[(start + j) % len(items)] for j in range(4)]
        out.append(build_window_example(
            prefix, [tokenizer.convert_tokens_to_ids(list(scheme.item_tokens(i))) for i in window], 1))
    return out


@pytest.fixture
def valid_samples():
    return [Sample(f"u{i}:5", f"u{i}", ("1", "2"), str(i % 12 + 1)) for i in range(N_VALID)]


def _cfg(**overrides) -> SFTConfig:
    return SFTConfig(**{"max_epochs": 5, "batch_size": 4, "lr": 1e-2, "warmup_steps": 0, "patience": 2, **overrides})


def _fingerprint(cfg: SFTConfig) -> dict:
    return {"sft": cfg.model_dump(mode="json")}


def _train(model, tokenizer, examples, valid_samples, cfg, run_dir, recommender, fingerprint=None):
    return train_sft(model, examples, tokenizer.pad_token_id, cfg, run_dir, recommender, valid_samples,
                     fingerprint=fingerprint if fingerprint is not None else _fingerprint(cfg))


def _log_epochs(run_dir) -> list[int]:
    return [json.loads(line)["epoch"] for line in (run_dir / "log.jsonl").read_text().splitlines()]


def _state_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_scripted_recommender_gives_the_scripted_ndcg(valid_samples):
    rec = ScriptedRecommender(torch.nn.Linear(1, 1), [0.3])
    assert validate(rec, valid_samples) == pytest.approx(0.3)


def test_validate_is_mean_ndcg_at_10_over_all_batches():
    class SecondPlace:
        def rank(self, samples, k, exclude=None):
            return [["other", s.target] for s in samples]

    samples = [Sample(f"u{i}:1", f"u{i}", (), "t") for i in range(70)]  # two rank batches of 64 + 6
    assert validate(SecondPlace(), samples) == pytest.approx(1 / math.log2(3))


def test_early_stopping_after_patience_epochs_without_improvement(tiny_policy, examples, valid_samples, tmp_path):
    model, tokenizer, _ = tiny_policy
    rec = ScriptedRecommender(model, [0.5, 1.0, 0.2, 0.1, 0.9])
    summary = _train(model, tokenizer, examples, valid_samples, _cfg(), tmp_path, rec)
    assert summary == {"best_epoch": 2, "best_valid_ndcg@10": pytest.approx(1.0), "epochs_run": 4}
    assert rec.calls == 4
    assert _log_epochs(tmp_path) == [1, 2, 3, 4]
    logged = [json.loads(line)["valid_ndcg@10"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert logged == pytest.approx([0.5, 1.0, 0.2, 0.1])


def test_a_tie_is_not_an_improvement(tiny_policy, examples, valid_samples, tmp_path):
    model, tokenizer, _ = tiny_policy
    rec = ScriptedRecommender(model, [0.5, 0.5, 0.5, 0.9])
    summary = _train(model, tokenizer, examples, valid_samples, _cfg(), tmp_path, rec)
    assert summary == {"best_epoch": 1, "best_valid_ndcg@10": pytest.approx(0.5), "epochs_run": 3}


def test_best_weights_are_restored_at_the_end(tiny_policy, examples, valid_samples, tmp_path):
    model, tokenizer, _ = tiny_policy
    rec = ScriptedRecommender(model, [0.5, 1.0, 0.2, 0.1, 0.9])
    _train(model, tokenizer, examples, valid_samples, _cfg(), tmp_path, rec)
    best, last = rec.weights[1], rec.weights[-1]
    assert not _state_equal(best, last), "training did not change the weights between epochs 2 and 4"
    assert _state_equal(model.state_dict(), best)
    assert _state_equal(torch.load(tmp_path / "best.pt", weights_only=True), best)


def test_interrupted_run_resumes_and_matches_an_uninterrupted_one(tiny_policy, examples, valid_samples, tmp_path):
    model, tokenizer, _ = tiny_policy
    scores = [0.2, 0.5, 0.9, 0.1, 0.3]  # best at epoch 3, after the interruption; early stop after epoch 5
    cfg = _cfg()
    reference_model = copy.deepcopy(model)
    reference = _train(reference_model, tokenizer, examples, valid_samples, cfg, tmp_path / "ref",
                       ScriptedRecommender(reference_model, scores))
    assert reference == {"best_epoch": 3, "best_valid_ndcg@10": pytest.approx(0.9), "epochs_run": 5}

    run_dir = tmp_path / "run"
    with pytest.raises(Interrupted):
        _train(model, tokenizer, examples, valid_samples, cfg, run_dir, ScriptedRecommender(model, scores, raise_at=2))
    assert _log_epochs(run_dir) == [1, 2]
    # same in-memory model, now holding epoch-3 weights: the resume must reload epoch 2's from last.pt
    rec = ScriptedRecommender(model, scores[2:])
    resumed = _train(model, tokenizer, examples, valid_samples, cfg, run_dir, rec)
    assert rec.calls == 3  # epochs 3, 4, 5 only
    assert resumed == reference
    assert _log_epochs(run_dir) == [1, 2, 3, 4, 5]
    for name, tensor in reference_model.state_dict().items():
        assert torch.allclose(model.state_dict()[name], tensor, atol=1e-6), name


def test_rerun_of_a_finished_run_trains_nothing(tiny_policy, examples, valid_samples, tmp_path):
    model, tokenizer, _ = tiny_policy
    cfg = _cfg()
    rec = ScriptedRecommender(model, [0.5, 0.4, 0.3])
    first = _train(model, tokenizer, examples, valid_samples, cfg, tmp_path, rec)
    assert first["epochs_run"] == 3
    best = {name: t.detach().clone() for name, t in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    rec = ScriptedRecommender(model, [])
    assert _train(model, tokenizer, examples, valid_samples, cfg, tmp_path, rec) == first
    assert rec.calls == 0
    assert _state_equal(model.state_dict(), best)


def test_run_killed_while_saving_best_resumes_to_a_usable_model(
        tiny_policy, examples, valid_samples, tmp_path, monkeypatch):
    model, tokenizer, _ = tiny_policy
    cfg = _cfg()
    real_save = torch.save
    best_saves = []

    def torn_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        if Path(f).name.startswith("best.pt"):  # best.pt itself, or a temporary it is renamed from
            best_saves.append(f)
            if len(best_saves) == 2:  # killed half-way through epoch 2's best.pt
                Path(f).write_bytes(Path(f).read_bytes()[: Path(f).stat().st_size // 2])
                raise Interrupted("killed while saving best.pt")

    monkeypatch.setattr(torch, "save", torn_save)
    first = ScriptedRecommender(model, [0.5, 0.9])
    with pytest.raises(Interrupted):
        _train(model, tokenizer, examples, valid_samples, cfg, tmp_path, first)
    monkeypatch.setattr(torch, "save", real_save)
    # the redone epoch 2 scores lower than the killed attempt did (nondeterministic training)
    summary = _train(model, tokenizer, examples, valid_samples, cfg, tmp_path, ScriptedRecommender(model, [0.4, 0.3]))
    assert summary == {"best_epoch": 1, "best_valid_ndcg@10": pytest.approx(0.5), "epochs_run": 3}
    assert _state_equal(model.state_dict(), first.weights[0])


@pytest.mark.parametrize("change, key", [
    (lambda fp: {"sft": {**fp["sft"], "lr": 0.05}}, "sft.lr"),
    (lambda fp: {**fp, "split": "other-hash"}, "split"),
])
def test_checkpoint_from_other_settings_is_refused(tiny_policy, examples, valid_samples, tmp_path, change, key):
    model, tokenizer, _ = tiny_policy
    cfg = _cfg(max_epochs=1)
    fingerprint = {**_fingerprint(cfg), "split": "hash"}
    _train(model, tokenizer, examples, valid_samples, cfg, tmp_path, ScriptedRecommender(model, [0.5]), fingerprint)
    saved = (tmp_path / "last.pt").read_bytes()
    new_cfg = cfg.model_copy(update={"lr": 0.05}) if key == "sft.lr" else cfg
    with pytest.raises(CheckpointError) as err:
        _train(model, tokenizer, examples, valid_samples, new_cfg, tmp_path, ScriptedRecommender(model, [0.5]),
               change(fingerprint))
    assert key in str(err.value) and "--force" in str(err.value)
    assert (tmp_path / "last.pt").read_bytes() == saved


def test_default_fingerprint_is_the_sft_config(tiny_policy, examples, valid_samples, tmp_path):
    model, tokenizer, _ = tiny_policy
    cfg = _cfg(max_epochs=1)
    train_sft(model, examples, tokenizer.pad_token_id, cfg, tmp_path, ScriptedRecommender(model, [0.5]), valid_samples)
    with pytest.raises(CheckpointError, match=r"sft\.lr.*--force"):
        train_sft(model, examples, tokenizer.pad_token_id, cfg.model_copy(update={"lr": 0.05}), tmp_path,
                  ScriptedRecommender(model, [0.5]), valid_samples)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_unreadable_checkpoint_is_a_checkpoint_error(tiny_policy, examples, valid_samples, tmp_path, damage):
    model, tokenizer, _ = tiny_policy
    cfg = _cfg(max_epochs=1)
    last = tmp_path / "last.pt"
    if damage == "garbage":
        tmp_path.mkdir(exist_ok=True)
        last.write_bytes(b"\x80\x04 this is not a checkpoint \xff\xfe")
    else:
        _train(model, tokenizer, examples, valid_samples, cfg, tmp_path, ScriptedRecommender(model, [0.5]))
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="--force"):
        _train(model, tokenizer, examples, valid_samples, cfg, tmp_path, ScriptedRecommender(model, [0.5]))


def test_nothing_to_train_or_validate_on_is_a_value_error(tiny_policy, examples, valid_samples, tmp_path):
    model, tokenizer, _ = tiny_policy
    rec = ScriptedRecommender(model, [0.5])
    with pytest.raises(ValueError, match="nothing to train"):
        _train(model, tokenizer, [], valid_samples, _cfg(), tmp_path, rec)
    with pytest.raises(ValueError, match="nothing to train"):
        _train(model, tokenizer, examples, [], _cfg(), tmp_path, rec)
    assert rec.calls == 0
