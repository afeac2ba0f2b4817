"""LoRA adapters for a pretrained backbone (peft), with the rows of the tokens we added kept trainable.

R²ec on a pretrained base trains LoRA (r = 4) rather than the whole model (issue 12; r2ec.txt App. C trains the
full model, which a GPU affords and a 2-core CPU does not). Our structure tokens (`<think>`, `</think>`,
`<answer>`, `<hist>`, ...) are new rows of the embedding table with no pretrained meaning, and `<answer>` is where
the user state h_u is read, so those rows must learn: `add_lora` leaves the embedding weight trainable and masks
its gradient to the new rows (the frozen rows get a zero gradient; under AdamW with weight decay 0 they do not
move). With tied embeddings the mask covers the lm_head too, since both are one parameter.
`merge_lora` folds the adapters back into plain weights before a bundle is saved, so bundles never need peft.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn


def row_gradient_mask(n_rows: int, trainable_rows: Sequence[int], device=None) -> torch.Tensor:
    """[n_rows, 1] float mask: 1 on `trainable_rows`, 0 elsewhere (multiplies an embedding weight's gradient)."""
    mask = torch.zeros(n_rows, 1, device=device)
    rows = [int(r) for r in trainable_rows]
    if any(r < 0 or r >= n_rows for r in rows):
        raise ValueError(f"trainable rows must lie in [0, {n_rows}), got {rows}")
    mask[rows] = 1.0
    return mask


def add_lora(lm: nn.Module, rank: int, alpha: float, trainable_token_ids: Sequence[int] = ()) -> nn.Module:
    """peft LoRA of `rank` on every linear layer of the decoder (not lm_head), scaling alpha / rank, no dropout;
    the embedding rows of `trainable_token_ids` stay trainable. Returns the peft model (same forward API)."""
    from peft import LoraConfig, get_peft_model

    if rank < 1:
        raise ValueError(f"LoRA rank must be >= 1, got {rank}")
    model = get_peft_model(lm, LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules="all-linear",
                                          bias="none"))
    if trainable_token_ids:
        weight = model.get_input_embeddings().weight
        mask = row_gradient_mask(weight.shape[0], trainable_token_ids, weight.device)
        weight.requires_grad_(True)
        model.row_mask_hook = weight.register_hook(lambda grad: grad * mask.to(grad.device, grad.dtype))
    return model


def is_lora(lm: nn.Module) -> bool:
    """True for a peft-wrapped model (without importing peft when it is not installed)."""
    return hasattr(lm, "merge_and_unload") and hasattr(lm, "peft_config")


def merge_lora(lm: nn.Module) -> nn.Module:
    """The plain HF model with the adapters folded into its weights (a no-op for a model without LoRA)."""
    if not is_lora(lm):
        return lm
    hook = getattr(lm, "row_mask_hook", None)
    if hook is not None:
        hook.remove()
    merged = lm.merge_and_unload()
    for parameter in merged.parameters():
        parameter.requires_grad_(True)
    return merged


@torch.no_grad()
def merged_copy(lm: nn.Module) -> nn.Module:
    """A plain model with the adapters folded in, in eval mode, for sampling; `lm` itself is left as it is.

    Decoding is kernel-launch bound on a GPU, and unmerged LoRA adds two matmuls per adapted layer to every
    decoded token; rollouts sample from this copy, the update still differentiates through the adapters.
    """
    if not is_lora(lm):
        return lm
    return copy.deepcopy(lm).merge_and_unload().eval().requires_grad_(False)


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters an optimizer should hold (frozen base weights of a LoRA model are left out)."""
    return [p for p in model.parameters() if p.requires_grad]
