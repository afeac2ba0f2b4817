import pytest
import torch

from training.trainers.sft_data import build_sequence_examples, build_window_example, collate, window_starts


def test_window_starts_cover_the_sequence():
    assert window_starts(1, 21, 10) == []
    assert window_starts(21, 21, 10) == [0]
    assert window_starts(22, 21, 10) == [0, 10]
    assert window_starts(45, 21, 10) == [0, 10, 20, 30]


def test_every_position_is_a_target_exactly_once():
    item_ids = {str(i): [100 + i, 200 + i] for i in range(45)}
    seq = [str(i) for i in range(45)]
    examples = build_sequence_examples({"u": seq}, {}, lambda toks: [1] * len(toks), item_ids,
                                       lambda i: (f"a{i}", f"b{i}"), window=21, stride=10)
    targets = []
    for e in examples:
        targets += [tok - 100 for tok, m in zip(e.input_ids, e.loss_mask, strict=True) if m and tok < 200]
    assert sorted(targets) == list(range(1, 45))


def test_build_window_example_masks_prefix_and_context():
    e = build_window_example([1, 2], [[10, 11], [20, 21], [30, 31]], first_target=2)
    assert e.input_ids == [1, 2, 10, 11, 20, 21, 30, 31]
    assert e.loss_mask == [False, False, False, False, False, False, True, True]


def test_collate_pads_right_and_hides_non_targets():
    e1 = build_window_example([1], [[5], [6]], first_target=1)
    e2 = build_window_example([1], [[5]], first_target=0)
    batch = collate([e1, e2], pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 5, 6], [1, 5, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[-100, -100, 6], [-100, 5, -100]]


def test_collate_never_labels_padding_even_when_pad_id_is_a_target():
    e1 = build_window_example([1], [[6], [6]], first_target=0)
    e2 = build_window_example([], [[6]], first_target=0)
    batch = collate([e1, e2], pad_id=6)
    assert batch["input_ids"].tolist() == [[1, 6, 6], [6, 6, 6]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 6], [6, -100, -100]]


def test_stride_must_be_smaller_than_window():
    with pytest.raises(ValueError, match="stride"):
        build_sequence_examples({}, {}, list, {}, str, window=5, stride=5)
    assert isinstance(collate([build_window_example([1], [[2]], 0)], 0)["labels"], torch.Tensor)
