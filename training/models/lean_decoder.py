"""An inference-only forward of a transformers `Qwen3ForCausalLM` for the trie beam search (training/rollout/beam.py).

The beam search runs one prompt forward, then one forward per identifier level for every beam. Through the
transformers model each beam carries a copy of its prompt's KV cache (repeated per beam, re-indexed per level) and
each forward pays the library's per-call set-up (mask building, cache bookkeeping), which on the project's tiny
policy costs more than the arithmetic. Here, on the model's own weights (read at call time, never copied):

- `prefill(ids, valid)`: the prompts' forward; returns the last position's logits and a `PromptCache` holding each
  prompt's keys and values once ([n, kv_heads, P, head_dim] per layer). The last layer computes attention and MLP
  for the last position only (its other positions' outputs are never read; their keys and values are kept).
- `step(tokens, prompt_cache, beam_cache)`: one new token per beam (rows = n prompts x W beams, prompt-major);
  a beam attends to its prompt's shared keys and to the keys of its own generated tokens (`BeamCache`, at most the
  identifier depth long), so re-indexing beams moves only those few tokens.

Same arithmetic as the transformers model called as the beam search calls it (left padding, position ids
0..P-1 whatever the padding, `attention_mask` masking padded keys; Qwen3: RMSNorm in float32, q/k head norms,
rotary embedding, grouped-query attention, SiLU MLP): logits agree to float rounding, a test checks it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def lean_supported(model) -> bool:
    """True for a plain (no adapter) Qwen3ForCausalLM with the default rotary embedding, no sliding window, SiLU,
    and no attention dropout in force (dropout is not modelled)."""
    config = getattr(model, "config", None)
    if type(model).__name__ != "Qwen3ForCausalLM" or config is None:
        return False
    rope = getattr(config, "rope_parameters", None) or {}
    return (rope.get("rope_type", "default") == "default" and not getattr(config, "use_sliding_window", False)
            and getattr(config, "hidden_act", "silu") == "silu"
            and (not model.training or not getattr(config, "attention_dropout", 0.0)))


@dataclass
class PromptCache:
    """keys/values: per layer [n, kv_heads, P, head_dim]; valid: [n, P] bool (False = left padding)."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    valid: torch.Tensor

    @property
    def length(self) -> int:
        return self.valid.shape[1]


@dataclass
class BeamCache:
    """keys/values: per layer [rows, kv_heads, t, head_dim], the t tokens generated so far by each beam."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]

    @property
    def length(self) -> int:
        return self.keys[0].shape[2] if self.keys else 0

    def reorder(self, parent: torch.Tensor) -> BeamCache:
        """The cache of the beams chosen at this level: row i continues beam parent[i]."""
        return BeamCache([k.index_select(0, parent) for k in self.keys],
                         [v.index_select(0, parent) for v in self.values])


class LeanQwen3:
    """prefill / step over a Qwen3ForCausalLM's weights (see module docstring)."""

    def __init__(self, model):
        config = model.config
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.eps, self.scale = config.rms_norm_eps, self.head_dim ** -0.5
        self.embed = model.get_input_embeddings().weight
        self.layers = list(model.model.layers[: config.num_hidden_layers])
        self.norm, self.lm_head = model.model.norm.weight, model.lm_head
        rotary = model.model.rotary_emb
        self.inv_freq, self.rope_scale = rotary.inv_freq, float(getattr(rotary, "attention_scaling", 1.0))

    def prefill(self, ids: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, PromptCache]:
        """ids, valid: [n, P] (left padded). Returns (logits of the last position [n, V], the prompts' cache)."""
        n, length = ids.shape
        cos, sin = self._rotary(torch.arange(length, device=ids.device), self.embed.dtype)
        allowed = torch.ones(length, length, dtype=torch.bool, device=ids.device).tril()
        eye = torch.eye(length, dtype=torch.bool, device=ids.device)
        mask = (allowed & valid[:, None, :] | eye)[:, None]  # a padded query sees itself: no all-masked row (NaN)
        hidden, keys, values = self.embed[ids], [], []
        for index, layer in enumerate(self.layers):
            attn = layer.self_attn
            x = self._rms(hidden, layer.input_layernorm.weight)
            q, k, v = self._qkv(attn, x, cos, sin)  # [n, heads | kv_heads, P, d]
            keys.append(k)
            values.append(v)
            if index == len(self.layers) - 1:  # only the last position's output is read: its query alone
                q, hidden, mask = q[:, :, -1:], hidden[:, -1:], mask[:, :, -1:]
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale,
                                                 enable_gqa=self.heads != self.kv_heads)
            hidden = hidden + F.linear(out.transpose(1, 2).reshape(n, q.shape[2], -1), attn.o_proj.weight,
                                       attn.o_proj.bias)
            hidden = hidden + self._mlp(layer, self._rms(hidden, layer.post_attention_layernorm.weight))
        return self._logits(hidden[:, -1]), PromptCache(keys, values, valid.bool())

    def step(self, tokens: torch.Tensor, prompt: PromptCache,
             beams: BeamCache | None) -> tuple[torch.Tensor, BeamCache]:
        """tokens: [rows] (rows = n x W, prompt-major), beams: their generated tokens' cache (None before the first).
        Returns (logits [rows, V], the cache with this token appended)."""
        n, rows = prompt.valid.shape[0], tokens.shape[0]
        width, done = rows // n, 0 if beams is None else beams.length
        position = torch.tensor([prompt.length + done], device=tokens.device)
        cos, sin = self._rotary(position, self.embed.dtype)
        hidden, new_keys, new_values = self.embed[tokens][:, None], [], []
        for i, layer in enumerate(self.layers):
            attn = layer.self_attn
            q, k, v = self._qkv(attn, self._rms(hidden, layer.input_layernorm.weight), cos, sin)  # [rows, h, 1, d]
            if beams is not None:
                k, v = torch.cat([beams.keys[i], k], dim=2), torch.cat([beams.values[i], v], dim=2)
            new_keys.append(k)
            new_values.append(v)
            out = self._shared_prefix_attention(q, prompt.keys[i], prompt.values[i], prompt.valid, k, v, n, width)
            hidden = hidden + F.linear(out, attn.o_proj.weight, attn.o_proj.bias)[:, None]
            hidden = hidden + self._mlp(layer, self._rms(hidden, layer.post_attention_layernorm.weight))
        return self._logits(hidden[:, -1]), BeamCache(new_keys, new_values)

    def extend(self, tokens: torch.Tensor, prompt: PromptCache) -> torch.Tensor:
        """Teacher forcing of W continuations per prompt at once: tokens [n, W, T] -> logits [n, W, T, V].

        Position t of a continuation attends to its prompt's shared keys and, causally, to its own tokens 0..t
        (RoPE positions P..P+T-1: only differences of positions matter, so left padding changes nothing). Trailing
        padding of a short continuation only feeds positions after its end, whose logits the caller ignores.
        Differentiable: the RL update scores every sampled completion of a prompt on one prompt forward."""
        n, width, length = tokens.shape
        cos, sin = self._rotary(prompt.length + torch.arange(length, device=tokens.device), self.embed.dtype)
        causal = torch.ones(length, length, dtype=torch.bool, device=tokens.device).tril()
        hidden = self.embed[tokens.reshape(n * width, length)]
        for i, layer in enumerate(self.layers):
            attn = layer.self_attn
            q, k, v = self._qkv(attn, self._rms(hidden, layer.input_layernorm.weight), cos, sin)  # [rows, h, T, d]
            out = self._continuation_attention(q, k, v, prompt.keys[i], prompt.values[i], prompt.valid, causal, n)
            hidden = hidden + F.linear(out, attn.o_proj.weight, attn.o_proj.bias)
            hidden = hidden + self._mlp(layer, self._rms(hidden, layer.post_attention_layernorm.weight))
        return self._logits(hidden).reshape(n, width, length, -1)

    def _continuation_attention(self, q, k, v, prompt_k, prompt_v, valid, causal, n: int) -> torch.Tensor:
        """q: [rows, heads, T, d], k/v: [rows, kv, T, d]; prompt_k/v: [n, kv, P, d] -> [rows, T, heads * d]."""
        groups, length = self.heads // self.kv_heads, q.shape[2]
        q = q.reshape(n, -1, self.kv_heads, groups, length, self.head_dim)
        k = k.reshape(n, -1, self.kv_heads, length, self.head_dim)
        v = v.reshape(n, -1, self.kv_heads, length, self.head_dim)
        to_prompt = torch.einsum("nwkgtd,nkpd->nwkgtp", q, prompt_k) * self.scale
        to_prompt = to_prompt.masked_fill(~valid[:, None, None, None, None, :], float("-inf"))
        to_self = (torch.einsum("nwkgtd,nwksd->nwkgts", q, k) * self.scale).masked_fill(~causal, float("-inf"))
        weights = torch.softmax(torch.cat([to_prompt, to_self], dim=-1), dim=-1)
        prompt_length = prompt_k.shape[2]
        out = (torch.einsum("nwkgtp,nkpd->nwkgtd", weights[..., :prompt_length], prompt_v)
               + torch.einsum("nwkgts,nwksd->nwkgtd", weights[..., prompt_length:], v))
        return out.permute(0, 1, 4, 2, 3, 5).reshape(-1, length, self.heads * self.head_dim)

    def _shared_prefix_attention(self, q, prompt_k, prompt_v, valid, beam_k, beam_v, n: int, width: int):
        """q: [rows, heads, 1, d]; prompt_k/v: [n, kv, P, d]; beam_k/v: [rows, kv, t, d] -> [rows, heads * d]."""
        groups = self.heads // self.kv_heads
        q = q.reshape(n, width, self.kv_heads, groups, self.head_dim)
        beam_k = beam_k.reshape(n, width, self.kv_heads, -1, self.head_dim)
        beam_v = beam_v.reshape(n, width, self.kv_heads, -1, self.head_dim)
        to_prompt = torch.einsum("nwkgd,nkpd->nwkgp", q, prompt_k) * self.scale
        to_prompt = to_prompt.masked_fill(~valid[:, None, None, None, :], float("-inf"))
        to_beam = torch.einsum("nwkgd,nwktd->nwkgt", q, beam_k) * self.scale
        weights = torch.softmax(torch.cat([to_prompt, to_beam], dim=-1), dim=-1)
        length = prompt_k.shape[2]
        out = (torch.einsum("nwkgp,nkpd->nwkgd", weights[..., :length], prompt_v)
               + torch.einsum("nwkgt,nwktd->nwkgd", weights[..., length:], beam_v))
        return out.reshape(n * width, self.heads * self.head_dim)

    def _qkv(self, attn, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        shape = (*x.shape[:-1], -1, self.head_dim)
        q = self._rms(F.linear(x, attn.q_proj.weight, attn.q_proj.bias).view(shape), attn.q_norm.weight)
        k = self._rms(F.linear(x, attn.k_proj.weight, attn.k_proj.bias).view(shape), attn.k_norm.weight)
        v = F.linear(x, attn.v_proj.weight, attn.v_proj.bias).view(shape).transpose(1, 2)
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        return q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin, v

    def _mlp(self, layer, x: torch.Tensor) -> torch.Tensor:
        mlp = layer.mlp
        return F.linear(F.silu(F.linear(x, mlp.gate_proj.weight)) * F.linear(x, mlp.up_proj.weight),
                        mlp.down_proj.weight)

    def _rms(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Qwen3RMSNorm: normalised in float32, scaled in the input's dtype."""
        x32 = x.float()
        return weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)

    def _rotary(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin: [len(positions), head_dim] (broadcast over batch and heads)."""
        freqs = positions[:, None].float() * self.inv_freq.float()[None]
        emb = torch.cat([freqs, freqs], dim=-1)
        return (emb.cos() * self.rope_scale).to(dtype), (emb.sin() * self.rope_scale).to(dtype)

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self._rms(hidden, self.norm))


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)
