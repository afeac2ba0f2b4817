"""Token weights from the item trie: RISER's certainty-aware loss mask.

Inputs come from the rollout (`training/rollout/sampling.py` records, per generated
token, how many trie children the prefix it was drawn from had).
"""

from __future__ import annotations

import torch


def last_token_flags(token_mask: torch.Tensor) -> torch.Tensor:
    """The last live token of each row.

    token_mask: [B, T] (bool or 0/1) -> bool [B, T], True at the last position with mask > 0
    (all False for an empty row). Live tokens need not be contiguous.
    """
    live = token_mask > 0
    if live.shape[-1] == 0:
        return live
    positions = torch.arange(live.shape[-1], device=live.device).expand_as(live)
    last = torch.where(live, positions, torch.full_like(positions, -1)).amax(dim=-1, keepdim=True)
    return live & (positions == last)


def certainty_mask(
    prefix_child_counts: torch.Tensor,
    is_final: torch.Tensor,
    d: float,
    token_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Certainty-aware loss weights (riser.txt §3.2.2, Eq. 6).

    prefix_child_counts: int [B, T], |Children(p_tj)| of the trie prefix preceding each token;
    is_final: bool [B, T], the token that completes the item id (see `last_token_flags`);
    token_mask: [B, T] (bool or 0/1), default all live -> float weights [B, T]:
      M_tj = 1 if |Children(p_tj)| > 1 or t_j is final, else d;   0 where token_mask is 0.
    A count of 0 or 1 (a deterministic or off-trie step) gets d unless final.
    d: the paper defines d in [0, 1) and tunes it over {0.5, 0.6, 0.7, 0.8} (App. C); d = 1 is also
    accepted and switches the mask off (all live tokens weigh 1), for ablations.
    """
    if not 0.0 <= d <= 1.0:
        raise ValueError(f"certainty mask decay d must be in [0, 1] (riser.txt Eq. 6; tuned 0.5-0.8), got {d}")
    if prefix_child_counts.shape != is_final.shape:
        raise ValueError(f"shape mismatch: counts {tuple(prefix_child_counts.shape)}, final {tuple(is_final.shape)}")
    if token_mask is not None and token_mask.shape != is_final.shape:
        raise ValueError(f"shape mismatch: token_mask {tuple(token_mask.shape)}, final {tuple(is_final.shape)}")
    decisive = (prefix_child_counts > 1) | is_final.bool()
    weights = torch.where(decisive, 1.0, float(d))
    if token_mask is not None:
        weights = weights * (token_mask > 0).to(weights.dtype)
    return weights
