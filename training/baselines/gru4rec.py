"""GRU4Rec (Hidasi et al. 2016, "Session-based Recommendations with RNNs"), CE variant.

item embedding -> dropout -> GRU (n_layers, hidden) -> dropout; the score of item j at a
position is hidden · E_j with the input item table E (padding row excluded), full catalog.
"""

from __future__ import annotations

import torch
from torch import nn

from training.baselines.seq_model import SeqRecommender
from training.config import SeqConfig


class GRU4RecModel(nn.Module):
    """seq LongTensor [batch, max_len] (padding = n_items, left-padded) -> hidden [batch, max_len, hidden]."""

    def __init__(self, n_items: int, config: SeqConfig):
        super().__init__()
        h = config.hidden
        self.n_items = n_items
        self.item_emb = nn.Embedding(n_items + 1, h, padding_idx=n_items)
        self.drop = nn.Dropout(config.dropout)
        self.gru = nn.GRU(h, h, num_layers=config.n_layers, batch_first=True)
        nn.init.normal_(self.item_emb.weight, std=0.02)
        with torch.no_grad():
            self.item_emb.weight[n_items].zero_()

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(self.drop(self.item_emb(seq)))
        return self.drop(out)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [..., h] -> scores [..., n_items] against the item table (padding row dropped)."""
        return hidden @ self.item_emb.weight[: self.n_items].T


class GRU4RecRecommender(SeqRecommender):
    name = "gru4rec"

    @classmethod
    def default_config(cls) -> SeqConfig:
        """One GRU layer (the SASRec defaults otherwise)."""
        return SeqConfig(n_layers=1)

    @staticmethod
    def build_model(n_items: int, config: SeqConfig) -> nn.Module:
        return GRU4RecModel(n_items, config)
