import pytest
import torch

from training.padding import pad_rows


def test_left_padding_by_hand():
    ids, mask = pad_rows([[1, 2, 3], [4], []], pad_id=9)
    assert torch.equal(ids, torch.tensor([[1, 2, 3], [9, 9, 4], [9, 9, 9]]))
    assert torch.equal(mask, torch.tensor([[1, 1, 1], [0, 0, 1], [0, 0, 0]]))
    assert ids.dtype == mask.dtype == torch.long


def test_right_padding_by_hand():
    ids, mask = pad_rows([[1, 2, 3], [4], []], pad_id=0, side="right")
    assert torch.equal(ids, torch.tensor([[1, 2, 3], [4, 0, 0], [0, 0, 0]]))
    assert torch.equal(mask, torch.tensor([[1, 1, 1], [1, 0, 0], [0, 0, 0]]))


@pytest.mark.parametrize(("side", "ids", "mask"), [
    ("left", [[3, 4], [9, 5]], [[1, 1], [0, 1]]),
    ("right", [[3, 4], [5, 9]], [[1, 1], [1, 0]]),
])
def test_length_keeps_the_last_entries(side, ids, mask):
    got_ids, got_mask = pad_rows([[1, 2, 3, 4], [5]], pad_id=9, side=side, length=2)
    assert got_ids.tolist() == ids and got_mask.tolist() == mask


def test_length_wider_than_rows_and_zero_length():
    ids, mask = pad_rows([(7, 8)], pad_id=0, length=4)
    assert ids.tolist() == [[0, 0, 7, 8]] and mask.tolist() == [[0, 0, 1, 1]]
    ids, mask = pad_rows([[1, 2]], pad_id=0, length=0)
    assert ids.shape == mask.shape == (1, 0)


def test_no_rows_and_bad_arguments():
    ids, mask = pad_rows([], pad_id=0)
    assert ids.shape == mask.shape == (0, 0)
    with pytest.raises(ValueError, match="side"):
        pad_rows([[1]], 0, side="middle")
    with pytest.raises(ValueError, match="length"):
        pad_rows([[1]], 0, length=-1)
