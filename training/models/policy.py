"""Policy builder: a small Qwen3-architecture causal LM from config, or any HF checkpoint.

The embedded default is trained from scratch (hidden 128 x 2 layers) with the
local tokenizer (DESIGN.md §4); `base_model` loads a pretrained HF causal LM
directory instead and grows its embeddings for the new identifier tokens.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerBase, Qwen3Config, Qwen3ForCausalLM

from training.config import PolicyConfig


def build_qwen3_config(cfg: PolicyConfig, tokenizer: PreTrainedTokenizerBase) -> Qwen3Config:
    if cfg.hidden_size % cfg.num_heads:
        raise ValueError(f"hidden_size {cfg.hidden_size} is not divisible by num_heads {cfg.num_heads}")
    return Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads, head_dim=cfg.hidden_size // cfg.num_heads,
        max_position_embeddings=cfg.max_positions, tie_word_embeddings=True,
        attention_dropout=cfg.attention_dropout, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )


def build_policy(cfg: PolicyConfig, tokenizer: PreTrainedTokenizerBase, seed: int = 0) -> torch.nn.Module:
    """Fresh Qwen3 from config, or `cfg.base_model` with embeddings resized to the tokenizer."""
    torch.manual_seed(seed)
    if cfg.base_model:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        if not Path(cfg.base_model).is_dir():
            raise FileNotFoundError(f"base model {cfg.base_model!r} is not a local directory")
        model = AutoModelForCausalLM.from_pretrained(cfg.base_model, dtype=torch.float32)
        model.resize_token_embeddings(len(tokenizer))
        return model
    return Qwen3ForCausalLM(build_qwen3_config(cfg, tokenizer))


def load_policy(path: Path) -> torch.nn.Module:
    """An HF causal LM folder -> fp32 model in eval mode.

    A single-file checkpoint (what bundles hold) is built from its config and filled from
    `model.safetensors` directly: `from_pretrained` spends ~0.4 s here compiling checkpoint
    conversion rules that a model saved by this transformers never needs. Anything else
    (sharded or legacy checkpoints) goes through `from_pretrained`.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = Path(path)
    if (path / "model.safetensors").is_file():
        model = _load_single_file(path)
    else:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    model.eval()
    return model


def _load_single_file(path: Path) -> torch.nn.Module:
    from safetensors.torch import load_file
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(path))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    state = load_file(str(path / "model.safetensors"))
    if getattr(config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as err:  # shape mismatches
        detail = str(err).splitlines()[-1].strip()
        raise ValueError(f"{path}: checkpoint does not match its config ({detail})") from None
    allowed = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - allowed or unexpected:
        raise ValueError(f"{path}: checkpoint does not match its config (missing {sorted(set(missing) - allowed)[:5]}, "
                         f"unexpected {sorted(unexpected)[:5]})")
    model.tie_weights()
    _materialise_buffers(model, config)
    return model.float()


def _materialise_buffers(model: torch.nn.Module, config) -> None:
    """Non-persistent buffers (rotary inverse frequencies) are not in the checkpoint: rebuild them on CPU."""
    for module in model.modules():
        if hasattr(module, "inv_freq") and module.inv_freq.is_meta:
            fresh = type(module)(config=config)
            module.inv_freq = fresh.inv_freq
            if hasattr(fresh, "original_inv_freq"):
                module.original_inv_freq = fresh.original_inv_freq


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
