import pytest
import torch
from pydantic import ValidationError

from training.models.rechead import Rechead
from training.trainers.rechead import (
    RecheadBatch,
    RecheadTrainConfig,
    compute_rechead_loss,
    iter_batches,
    train_rechead,
)

N_ITEMS, TEXT_DIM, DIM = 12, 16, 8


def make_model() -> Rechead:
    torch.manual_seed(0)
    return Rechead(torch.randn(N_ITEMS, TEXT_DIM), dim=DIM, n_heads=2, dropout=0.0)


def make_batch(rows: int = 10, seed: int = 1) -> RecheadBatch:
    g = torch.Generator().manual_seed(seed)
    return RecheadBatch(
        history_emb=torch.randn(rows, TEXT_DIM, generator=g),
        cot_emb=torch.randn(rows, TEXT_DIM, generator=g),
        answer_emb=torch.randn(rows, TEXT_DIM, generator=g),
        answer_parsed=torch.arange(rows) % 3 != 0,
        target=torch.randint(0, N_ITEMS, (rows,), generator=g),
    )


def fixed_loss(model: Rechead, batch: RecheadBatch, cfg: RecheadTrainConfig) -> float:
    with torch.no_grad():
        return compute_rechead_loss(model, batch, cfg, torch.Generator().manual_seed(cfg.seed))[0].item()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("loss", ["sampled", "full"])
def test_one_step_lowers_the_loss_on_a_fixed_batch(loss):
    model, batch = make_model(), make_batch()
    cfg = RecheadTrainConfig(max_epochs=1, lr=1e-2, loss=loss, num_negatives=5)
    before = fixed_loss(model, batch, cfg)  # same seed -> the same negatives the step will draw
    result = train_rechead(model, [batch], cfg)
    assert fixed_loss(model, batch, cfg) < before
    assert result.best_epoch == 0 and result.history[0]["train_loss"] == pytest.approx(before, rel=1e-5)


@pytest.mark.timeout(60)
def test_early_stopping_restores_the_best_weights():
    model, batch = make_model(), make_batch()
    metrics = iter([0.1, 0.3, 0.2, 0.25, 0.9])  # best at epoch 1; two worse epochs stop it before the 0.9
    snapshots = []

    def metric_fn(m: Rechead) -> float:
        assert not m.training
        snapshots.append({k: v.clone() for k, v in m.state_dict().items()})
        return next(metrics)

    records = []
    cfg = RecheadTrainConfig(max_epochs=10, lr=1e-2, patience=2, num_negatives=5)
    result = train_rechead(model, [batch], cfg, metric_fn=metric_fn, on_epoch=records.append)
    assert (result.best_epoch, result.best_metric, len(result.history)) == (1, 0.3, 4)
    assert [r["epoch"] for r in records] == [0, 1, 2, 3] and records[1]["metric"] == 0.3
    assert set(records[0]) == {"epoch", "train_loss", "gate_mean", "metric", "seconds"}
    for name, value in model.state_dict().items():
        assert torch.equal(value, snapshots[1][name]), name
    assert not torch.equal(snapshots[3]["f_gate.weight"], snapshots[1]["f_gate.weight"])


@pytest.mark.timeout(60)
def test_without_a_metric_it_runs_every_epoch_and_keeps_the_last():
    data = make_batch(rows=9)
    seen_epochs = []

    def batches(epoch: int):
        seen_epochs.append(epoch)
        return iter_batches(data, batch_size=4, seed=epoch)

    result = train_rechead(make_model(), batches, RecheadTrainConfig(max_epochs=3, num_negatives=3))
    assert seen_epochs == [0, 1, 2] and result.best_epoch == 2 and result.best_metric is None


@pytest.mark.timeout(30)
def test_iter_batches_covers_every_row_once():
    data = make_batch(rows=10)
    parts = list(iter_batches(data, batch_size=4, seed=0))
    assert [len(p) for p in parts] == [4, 4, 2]
    seen = torch.cat([p.history_emb for p in parts])
    assert sorted(map(tuple, seen.tolist())) == sorted(map(tuple, data.history_emb.tolist()))
    assert torch.equal(parts[0].target, next(iter_batches(data, 4, seed=0)).target)  # seeded


@pytest.mark.timeout(30)
def test_a_spent_iterator_is_an_error_not_a_silent_noop():
    one_shot = iter([make_batch()])
    with pytest.raises(ValueError, match="no batches"):
        train_rechead(make_model(), one_shot, RecheadTrainConfig(max_epochs=2, num_negatives=3))


@pytest.mark.timeout(30)
def test_config_refuses_typos():
    with pytest.raises(ValidationError):
        RecheadTrainConfig(num_negative=5)
