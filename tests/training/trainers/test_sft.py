import math

import pytest
import torch

from training.trainers.sft import compute_next_token_loss, lr_factor
from training.trainers.sft_data import build_window_example, collate


def test_lr_factor_warmup_then_cosine_to_ten_percent():
    assert lr_factor(0, 10, 110) == pytest.approx(0.1)
    assert lr_factor(9, 10, 110) == pytest.approx(1.0)
    assert lr_factor(10, 10, 110) == pytest.approx(1.0)
    assert lr_factor(60, 10, 110) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(110, 10, 110) == pytest.approx(0.1)


def test_next_token_loss_equals_hf_loss_on_labelled_positions(tiny_policy):
    model, tokenizer, _ = tiny_policy
    batch = collate([build_window_example([1, 5], [[11, 12], [13, 14]], 1),
                     build_window_example([1], [[12, 13], [14, 15], [16, 11]], 1)], tokenizer.pad_token_id)
    ours = compute_next_token_loss(model, batch)
    reference = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                      labels=batch["labels"]).loss
    assert torch.allclose(ours, reference, atol=1e-5)
