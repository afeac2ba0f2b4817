"""RPORec's Rechead: history + CoT + answer -> user vector -> dot product with item vectors.

rporec.txt §2.1.1 (Fig. 1c, Eq. 1-5). The sentence transformer of each encoder f = FFN ∘ e
(all-MiniLM-L6-v2, frozen by default, DESIGN.md §4) runs upstream: the module takes its 384-d
outputs as tensors, so it stays light and a stage-I epoch never re-encodes text. Seam for
fine-tuning e: compute those tensors inside the training step with a trainable encoder; nothing
here assumes they are constants, so the gradient flows into it.

Shapes: B users, N catalog items, D text-embedding size (384), d model size.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import nn

Pooling = Literal["primary", "mean"]
PRIMARY_POSITION = 2  # the token order of Eq. 3: [r_x; r_y; r_sel]


def build_projection(in_dim: int, out_dim: int, dropout: float = 0.0) -> nn.Sequential:
    """The FFN of an encoder f = FFN ∘ e (Eq. 1): Linear -> GELU -> Dropout -> Linear, [.., D] -> [.., d]."""
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(out_dim, out_dim))


def select_primary(r_answer: torch.Tensor, r_history: torch.Tensor, answer_parsed: torch.Tensor) -> torch.Tensor:
    """Primary representation (Eq. 2): r_sel = r_z where the answer parsed, else r_x.

    r_answer, r_history: [B, d]; answer_parsed: bool [B] -> [B, d].
    """
    return torch.where(answer_parsed.bool().unsqueeze(-1), r_answer, r_history)


def compute_gate(gate_logit: torch.Tensor, gamma: float) -> torch.Tensor:
    """Gate of Eq. 4: γ0 = γ · σ(f_gate([r_sel ‖ r_rea]) − 0.5), read as printed (the −0.5 inside σ).

    gate_logit: f_gate's output, [B, 1] -> γ0 in (0, γ), [B, 1]. At logit 0 the gate is γ·σ(−0.5) ≈ 0.38γ,
    so a fresh head leans on r_sel and lets r_rea in only as f_gate learns to open it.
    """
    return gamma * torch.sigmoid(gate_logit - 0.5)


def fuse_user_vector(r_rea: torch.Tensor, r_sel: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """User vector of Eq. 4: h_u = γ0 · r_rea + r_sel. r_rea, r_sel: [B, d]; gate: [B, 1] -> [B, d]."""
    return gate * r_rea + r_sel


def pool_reasoning_tokens(tokens: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """r_rea from the encoder's 3 output tokens [B, 3, d] -> [B, d].

    Eq. 3 maps [r_x; r_y; r_sel] to one vector but does not say how. "primary" (default) takes the
    output at r_sel's position: r_sel re-read in the context of history and CoT, so h_u = r_sel + γ0·r_rea
    is a gated residual update of the primary token and the gate compares a token with its own update.
    "mean" averages the 3 outputs.
    """
    if pooling == "primary":
        return tokens[:, PRIMARY_POSITION]
    if pooling == "mean":
        return tokens.mean(dim=1)
    raise ValueError(f"unknown pooling {pooling!r}; use 'primary' or 'mean'")


class UserEncoding(NamedTuple):
    """user: h_u [B, d]; gate: γ0 [B, 1]; primary: r_sel [B, d]; reasoning: r_rea [B, d]."""

    user: torch.Tensor
    gate: torch.Tensor
    primary: torch.Tensor
    reasoning: torch.Tensor


class Rechead(nn.Module):
    """Reasoning-augmented recommendation head (rporec.txt §2.1.1).

    item_text_embeddings: [N, D] sentence embeddings of every catalog item's text, in catalog index
    order (kept as a buffer, so a saved state dict restores them); dim: d; gamma: γ ∈ (0, 1) of Eq. 4
    (the paper gives no value; 0.5 by default); n_layers, n_heads: the TransformerEncoder of Eq. 3;
    pooling: see `pool_reasoning_tokens`. The three tokens get learned type embeddings (the encoder
    is order-blind, and r_sel equals r_x whenever the answer fails to parse).
    """

    def __init__(
        self,
        item_text_embeddings: torch.Tensor,
        dim: int = 64,
        gamma: float = 0.5,
        n_layers: int = 1,
        n_heads: int = 2,
        dropout: float = 0.1,
        pooling: Pooling = "primary",
    ) -> None:
        super().__init__()
        if not 0.0 < gamma < 1.0:
            raise ValueError(f"gamma must lie in (0, 1) (rporec.txt Eq. 4), got {gamma}")
        if item_text_embeddings.ndim != 2 or len(item_text_embeddings) < 2:
            raise ValueError(f"item_text_embeddings must be [N >= 2, D], got {tuple(item_text_embeddings.shape)}")
        pool_reasoning_tokens(torch.zeros(1, 3, 1), pooling)  # fail early on an unknown pooling
        n_items, text_dim = item_text_embeddings.shape
        self.hparams = {"n_items": n_items, "text_dim": text_dim, "dim": dim, "gamma": gamma,
                        "n_layers": n_layers, "n_heads": n_heads, "dropout": dropout, "pooling": pooling}
        self.gamma, self.pooling = gamma, pooling
        self.register_buffer("item_text_embeddings", item_text_embeddings.detach().float().clone())
        self.f_his = build_projection(text_dim, dim, dropout)
        self.f_cot = build_projection(text_dim, dim, dropout)
        self.f_ans = build_projection(text_dim, dim, dropout)
        self.f_item = build_projection(text_dim, dim, dropout)
        self.token_types = nn.Parameter(torch.randn(3, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, n_heads, dim_feedforward=2 * dim, dropout=dropout,
                                           batch_first=True, norm_first=True)
        self.reasoner = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.f_gate = nn.Linear(2 * dim, 1)

    @property
    def n_items(self) -> int:
        return self.item_text_embeddings.shape[0]

    def gate_for(self, r_sel: torch.Tensor, r_rea: torch.Tensor) -> torch.Tensor:
        """γ0 of Eq. 4 from r_sel, r_rea [B, d] -> [B, 1]."""
        return compute_gate(self.f_gate(torch.cat([r_sel, r_rea], dim=-1)), self.gamma)

    def encode_user_parts(
        self,
        history_emb: torch.Tensor,
        cot_emb: torch.Tensor,
        answer_emb: torch.Tensor,
        answer_parsed: torch.Tensor,
    ) -> UserEncoding:
        """Eq. 1-4. history_emb, cot_emb, answer_emb: [B, D]; answer_parsed: bool [B] -> UserEncoding."""
        r_x, r_y, r_z = self.f_his(history_emb), self.f_cot(cot_emb), self.f_ans(answer_emb)
        r_sel = select_primary(r_z, r_x, answer_parsed)
        tokens = torch.stack([r_x, r_y, r_sel], dim=1) + self.token_types
        r_rea = pool_reasoning_tokens(self.reasoner(tokens), self.pooling)
        gate = self.gate_for(r_sel, r_rea)
        return UserEncoding(fuse_user_vector(r_rea, r_sel, gate), gate, r_sel, r_rea)

    def encode_user(self, history_emb, cot_emb, answer_emb, answer_parsed) -> torch.Tensor:
        """h_u [B, d] (Eq. 4); inputs as in `encode_user_parts`."""
        return self.encode_user_parts(history_emb, cot_emb, answer_emb, answer_parsed).user

    forward = encode_user

    def item_vectors(self, indices: torch.Tensor | None = None) -> torch.Tensor:
        """h_v = f_item(e(item text)): all items [N, d], or the rows `indices` [...] -> [..., d]."""
        text = self.item_text_embeddings if indices is None else self.item_text_embeddings[indices]
        return self.f_item(text)

    @torch.no_grad()
    def item_matrix(self) -> torch.Tensor:
        """H_V [N, d] float32 on CPU, eval mode: what a bundle saves and FAISS searches by inner product."""
        was_training = self.training
        self.eval()
        try:
            return self.item_vectors().float().cpu().contiguous()
        finally:
            self.train(was_training)

    def score_candidates(self, users: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """s(u, v) = h_u·h_v (Eq. 5) for users [B, d] and item indices [B, K] -> [B, K].

        Projects each distinct candidate once: min(N, B·K) rows per call.
        """
        unique, inverse = candidates.unique(return_inverse=True)
        items = self.item_vectors(unique)[inverse]  # [B, K, d]
        return torch.einsum("bd,bkd->bk", users, items)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """s(u, v) for every catalog item (Eq. 5): users [B, d] -> [B, N]."""
        return users @ self.item_vectors().T
