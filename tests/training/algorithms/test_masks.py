import pytest
import torch

from training.algorithms.masks import certainty_mask, last_token_flags

# Row 0: 3 live tokens; the root has 5 children, then two single-child steps (the last is final).
# Row 1: 4 live tokens; prefixes with 3, 2, 1, 1 children (the last is final).
COUNTS = torch.tensor([[5, 1, 1, 0], [3, 2, 1, 1]])
MASK = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])


def test_last_token_flags():
    assert last_token_flags(MASK).tolist() == [[False, False, True, False], [False, False, False, True]]
    gaps = torch.tensor([[1, 0, 1, 0], [0, 0, 0, 0]])  # non-contiguous row and an empty row
    assert last_token_flags(gaps).tolist() == [[False, False, True, False], [False] * 4]
    assert last_token_flags(torch.zeros(2, 0)).shape == (2, 0)


def test_certainty_mask_matches_hand_computation():
    final = last_token_flags(MASK)
    # row 0: 5 > 1 -> 1;  1 child, not final -> d;  1 child but final -> 1;  padding -> 0
    # row 1: 3 > 1 -> 1;  2 > 1 -> 1;  1 child -> d;  final -> 1
    expected = torch.tensor([[1.0, 0.5, 1.0, 0.0], [1.0, 1.0, 0.5, 1.0]])
    assert torch.equal(certainty_mask(COUNTS, final, 0.5, MASK), expected)
    expected = torch.tensor([[1.0, 0.8, 1.0, 0.0], [1.0, 1.0, 0.8, 1.0]])
    assert torch.allclose(certainty_mask(COUNTS, final, 0.8, MASK), expected)


def test_certainty_mask_without_token_mask_and_off_trie_counts():
    # count 0 (off-trie) is treated as deterministic: d unless final
    counts = torch.tensor([[0, 0]])
    final = torch.tensor([[False, True]])
    assert torch.equal(certainty_mask(counts, final, 0.6), torch.tensor([[0.6, 1.0]]))
    assert torch.equal(certainty_mask(counts, final, 1.0), torch.ones(1, 2))  # d = 1: mask off


def test_certainty_mask_empty_mask_gives_zeros():
    empty = torch.zeros(2, 4, dtype=torch.bool)
    weights = certainty_mask(COUNTS, last_token_flags(empty), 0.7, empty)
    assert torch.equal(weights, torch.zeros(2, 4))


def test_certainty_mask_validates_inputs():
    final = last_token_flags(MASK)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"d must be in \[0, 1\]"):
            certainty_mask(COUNTS, final, bad, MASK)
    with pytest.raises(ValueError, match="shape mismatch"):
        certainty_mask(COUNTS, final[:, :3], 0.5)
    with pytest.raises(ValueError, match="shape mismatch"):
        certainty_mask(COUNTS, final, 0.5, MASK[:1])
