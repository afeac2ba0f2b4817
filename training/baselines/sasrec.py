"""SASRec (Kang & McAuley 2018, "Self-Attentive Sequential Recommendation"), CE variant.

item embedding + learned positional embedding -> dropout -> N pre-norm causal self-attention
blocks -> LayerNorm; the score of item j at a position is hidden · E_j with the item table E
shared between input and output (padding row excluded), over the full catalog.
"""

from __future__ import annotations

import torch
from torch import nn

from training.baselines.seq_model import SeqRecommender
from training.config import SeqConfig


class SASRecModel(nn.Module):
    """seq LongTensor [batch, max_len] (padding = n_items, left-padded) -> hidden [batch, max_len, hidden]."""

    def __init__(self, n_items: int, config: SeqConfig):
        super().__init__()
        h = config.hidden
        self.n_items, self.n_heads = n_items, config.n_heads
        self.item_emb = nn.Embedding(n_items + 1, h, padding_idx=n_items)
        self.pos_emb = nn.Embedding(config.max_len, h)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(h, config.n_heads, dim_feedforward=4 * h, dropout=config.dropout,
                                       activation="gelu", batch_first=True, norm_first=True)
            for _ in range(config.n_layers)
        )
        self.norm = nn.LayerNorm(h)
        nn.init.normal_(self.item_emb.weight, std=0.02)
        nn.init.normal_(self.pos_emb.weight, std=0.02)
        with torch.no_grad():
            self.item_emb.weight[n_items].zero_()

    def attention_mask(self, seq: torch.Tensor) -> torch.Tensor:
        """Bool [batch * n_heads, L, L], True = blocked: future keys and padding keys.

        A position may always attend to itself, so no row is fully blocked (an all-padding
        history yields a learned representation rather than NaN).
        """
        length = seq.shape[1]
        ones = torch.ones(length, length, dtype=torch.bool, device=seq.device)
        causal = torch.triu(ones, diagonal=1)
        pad_keys = (seq == self.n_items)[:, None, :] & ~torch.eye(length, dtype=torch.bool, device=seq.device)
        return (causal | pad_keys).repeat_interleave(self.n_heads, dim=0)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(seq.shape[1], device=seq.device)
        x = self.drop(self.item_emb(seq) + self.pos_emb(positions))
        mask = self.attention_mask(seq)
        for block in self.blocks:
            x = block(x, src_mask=mask)
        return self.norm(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [..., h] -> scores [..., n_items] against the item table (padding row dropped)."""
        return hidden @ self.item_emb.weight[: self.n_items].T


class SASRecRecommender(SeqRecommender):
    name = "sasrec"

    @staticmethod
    def build_model(n_items: int, config: SeqConfig) -> nn.Module:
        return SASRecModel(n_items, config)
