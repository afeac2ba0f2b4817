import pytest
import torch

from training.algorithms.reduce import aggregate, broadcast_advantages, mean_live, share

LOSS = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
W = torch.tensor([[1.0, 0.5, 1.0], [1.0, 0.0, 0.0]])


def test_token_aggregation_normalises_by_sum_of_weights():
    # (1 * 1 + 0.5 * 2 + 1 * 3 + 1 * 4) / (1 + 0.5 + 1 + 1) = 9 / 3.5 = 2.571429
    assert aggregate(LOSS, W, "token").item() == pytest.approx(2.571429, abs=1e-6)


def test_sequence_aggregation_means_rows_then_batch():
    # row 0: 5 / 2.5 = 2.0, row 1: 4 / 1 = 4.0 -> 3.0; a row with no weight is skipped
    assert aggregate(LOSS, W, "sequence").item() == pytest.approx(3.0, abs=1e-6)
    w = torch.tensor([[1.0, 0.5, 1.0], [0.0, 0.0, 0.0]])
    assert aggregate(LOSS, w, "sequence").item() == pytest.approx(2.0, abs=1e-6)


def test_aggregation_ignores_non_finite_values_on_padding():
    loss = torch.tensor([[1.0, float("inf")]])
    assert aggregate(loss, torch.tensor([[1.0, 0.0]])).item() == 1.0


def test_empty_weights_give_zero_not_nan():
    x = torch.ones(2, 3, requires_grad=True)
    for mode in ("token", "sequence"):
        out = aggregate(x, torch.zeros(2, 3), mode)
        out.backward()
        assert out.item() == 0.0 and torch.isfinite(x.grad).all()
    assert aggregate(torch.zeros(0, 3), torch.zeros(0, 3)).item() == 0.0
    assert mean_live(x, torch.zeros(2, 3)) == 0.0 and share(x > 0, torch.zeros(2, 3)) == 0.0
    with pytest.raises(ValueError, match="aggregation"):
        aggregate(x, W, "batch")


def test_broadcast_and_share():
    like = torch.zeros(2, 3)
    assert broadcast_advantages(torch.tensor([1.0, -2.0]), like).tolist() == [[1.0] * 3, [-2.0] * 3]
    assert broadcast_advantages(torch.ones(2, 3), like).shape == (2, 3)
    # live tokens 4; flags on 2 of them (and one on padding, not counted) -> 0.5
    flags = torch.tensor([[True, False, True], [False, True, False]])
    assert share(flags, W) == pytest.approx(0.5)
