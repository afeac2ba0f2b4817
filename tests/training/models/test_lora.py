"""LoRA on an R²ec backbone: adapters and the new token rows learn, the pretrained weights stay, merge is exact."""

import pytest
import torch

from tests.r2ec_kit import make_r2ec_kit
from training.config import R2ecConfig
from training.models.lora import (
    add_lora,
    is_lora,
    merge_lora,
    merged_copy,
    row_gradient_mask,
    trainable_parameters,
)
from training.prompts import ANSWER, THINK, THINK_END, r2ec_prompt_kwargs
from training.trainers.r2ec import build_r2ec_prompts, r2ec_step


def test_row_mask_marks_only_the_given_rows():
    assert row_gradient_mask(4, [1, 3]).squeeze(1).tolist() == [0.0, 1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="trainable rows"):
        row_gradient_mask(4, [4])


@pytest.fixture
def lora_kit(one_torch_thread):
    kit = make_r2ec_kit()
    vocab = kit.tokenizer.get_vocab()
    kit.new_rows = sorted(vocab[t] for t in (THINK, THINK_END, ANSWER))
    kit.base_before = {k: v.clone() for k, v in kit.model.lm.state_dict().items()}
    kit.model.lm = add_lora(kit.model.lm, rank=4, alpha=8.0, trainable_token_ids=kit.new_rows)
    kit.prompts = build_r2ec_prompts(kit.split.train, kit.catalog, kit.tokenizer, kit.scheme.item_tokens,
                                     kit.split.profiles)
    return kit


def test_a_step_moves_adapters_and_new_rows_only(lora_kit):
    kit = lora_kit
    model, cfg = kit.model, R2ecConfig(prompts_per_step=4, group_size=2, max_think_tokens=4, lr=1e-2,
                                       warmup_steps=0)
    assert is_lora(model.lm)
    adapters = {n: p.detach().clone() for n, p in model.lm.named_parameters() if "lora_B" in n}
    assert adapters and all(float(p.abs().sum()) == 0 for p in adapters.values())  # LoRA B starts at zero
    model.refresh_item_table()
    optimizer = torch.optim.AdamW(trainable_parameters(model), lr=cfg.lr, weight_decay=0.0)
    for _ in range(2):
        r2ec_step(model, kit.prompts[:4], cfg, optimizer, generator=torch.Generator().manual_seed(0))
    moved = {n for n, p in model.lm.named_parameters() if "lora_B" in n and not torch.equal(p, adapters[n])}
    assert moved == set(adapters)

    embedding = model.lm.get_input_embeddings().weight.detach()
    before = kit.base_before["model.embed_tokens.weight"]
    changed_rows = (embedding != before).any(dim=1).nonzero().flatten().tolist()
    assert changed_rows and set(changed_rows) <= set(kit.new_rows)
    base = {n.replace("base_model.model.", "").replace("base_layer.", ""): p
            for n, p in model.lm.named_parameters() if "lora_" not in n and "embed_tokens" not in n}
    assert all(torch.equal(p, kit.base_before[n]) for n, p in base.items())


def test_merge_gives_a_plain_model_with_the_same_outputs(lora_kit):
    kit = lora_kit
    with torch.no_grad():
        for p in (p for n, p in kit.model.lm.named_parameters() if "lora_B" in n):
            p.normal_(0, 0.05)  # non-zero adapters, so merging has something to fold in
    ids = torch.tensor([list(kit.prompts[0].prompt_ids)])
    kit.model.lm.eval()
    with torch.no_grad():
        expected = kit.model.lm(input_ids=ids).logits
        merged = merge_lora(kit.model.lm).eval()
        assert not is_lora(merged) and "lora" not in " ".join(merged.state_dict())
        torch.testing.assert_close(merged(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-5)
    assert merge_lora(merged) is merged


def test_text_prompt_style_puts_separators_and_the_instruction():
    assert r2ec_prompt_kwargs("tokens") == {}
    text = r2ec_prompt_kwargs("text")
    assert text["item_separator"] == ";" and text["instruction"].endswith("next.")
    with pytest.raises(ValueError, match="prompt style"):
        r2ec_prompt_kwargs("chat")


def test_merged_copy_samples_like_the_adapters_and_leaves_them_in_place(lora_kit):
    kit = lora_kit
    with torch.no_grad():
        for p in (p for n, p in kit.model.lm.named_parameters() if "lora_B" in n):
            p.normal_(0, 0.05)
    ids = torch.tensor([list(kit.prompts[0].prompt_ids)])
    kit.model.lm.eval()
    copy = merged_copy(kit.model.lm)
    with torch.no_grad():
        torch.testing.assert_close(copy(input_ids=ids).logits, kit.model.lm(input_ids=ids).logits,
                                   atol=1e-5, rtol=1e-5)
    assert is_lora(kit.model.lm) and not is_lora(copy) and not any(p.requires_grad for p in copy.parameters())
    assert merged_copy(copy) is copy
