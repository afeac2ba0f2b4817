"""RecPO's recommendation-action terms (r2ec.txt §3.1 Eq. 1, §4.2.3 Eq. 6-8), pure.

The reasoning tokens use the engine's `clipped_pg` loss unchanged (Eq. 4 with the ratio of Eq. 6); this module
adds what is particular to R²ec: the in-batch softmax policy of the recommending action (Eq. 7), the choice of
the one trajectory per user whose action is trained (the arg max of Eq. 8), the clipped recommendation loss
and the in-batch contrastive loss of the "w/o reasoning" control (Eq. 1). Shapes: B users, G trajectories
per user, C in-batch candidate items, d hidden size.

Not in the `losses` registry (as `rechead_losses`): those are token-level losses over generated sequences; these
score user states against items. The trainer calls them directly; `clipped_pg` is looked up by name.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from training.algorithms.losses import compute_clipped_pg_loss


def build_in_batch_candidates(targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The in-batch item set I_B of Eq. 1/7: targets long [B] -> (distinct items [C], labels long [B]).

    labels[b] is the column of targets[b] among the candidates. RRec keeps one column per row, so two users
    with the same target there split its probability; distinct columns keep each positive whole.
    """
    candidates, labels = torch.unique(targets, sorted=True, return_inverse=True)
    return candidates, labels


def compute_in_batch_logprob(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log π(v+ | s) of the recommending action as an in-batch softmax (r2ec.txt §4.2.3, Eq. 7).

    scores: [M, C] s(u, v) = <h_u, e_v>/τ of each trajectory's user state against the candidates;
    labels: long [M] column of each row's target -> [M]:
      log π(v+|s) = s(u, v+) − log Σ_{v ∈ I_B} exp s(u, v)
    """
    return F.log_softmax(scores.float(), dim=-1).gather(1, labels.unsqueeze(-1)).squeeze(-1)


def select_best_trajectories(advantages: torch.Tensor) -> torch.Tensor:
    """i* = argmax_i A_i per user (r2ec.txt §4.2.3, Eq. 8): advantages [B, G] -> bool [B, G], one True per row.

    Ties go to the first trajectory (`argmax`); RRec's `topk(1)` picks one of the tied ones too.
    """
    best = torch.zeros_like(advantages, dtype=torch.bool)
    if advantages.numel():
        best.scatter_(1, advantages.argmax(dim=1, keepdim=True), True)
    return best


def compute_recpo_rec_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped recommendation term of the RecPO objective (r2ec.txt §4.2.3, Eq. 7-8), on the best trajectory only.

    logprobs, old_logprobs, advantages: [B, G] (log π_θ and log π_θold of Eq. 7, trajectory advantages of Eq. 2)
    -> scalar loss, stats.
      i*_b = argmax_i A_bi;  r_b = π_θ(v+|s_b,i*) / π_θold(v+|s_b,i*)
      L_rec = 1/B Σ_b max(−A_b,i* r_b, −A_b,i* clip(r_b, 1 − ε_low, 1 + ε_high))
    It is `clipped_pg` on a one-token action whose weight is 1 for i* and 0 elsewhere, so the other G − 1
    trajectories get exactly zero gradient. Normaliser: the B chosen trajectories (RRec averages over all
    B·G rows, i.e. this divided by G; scale it with the trainer's rec weight if that matters).
    stats: clip_fraction, approx_kl, ratio_mean (over the chosen trajectories) and best_advantage (mean A_b,i*).
    """
    if not logprobs.shape == old_logprobs.shape == advantages.shape or logprobs.ndim != 2:
        raise ValueError(f"need three [B, G] tensors, got {tuple(logprobs.shape)}, {tuple(old_logprobs.shape)}, "
                         f"{tuple(advantages.shape)}")
    best = select_best_trajectories(advantages.detach())
    loss, stats = compute_clipped_pg_loss(
        logprobs.reshape(-1, 1), old_logprobs.reshape(-1, 1), advantages.reshape(-1),
        best.reshape(-1, 1).to(logprobs.dtype), clip_low, clip_high,
    )
    stats = {k: v for k, v in stats.items() if k != "dual_clip_fraction"}
    stats["best_advantage"] = float(advantages.detach()[best].mean().item()) if best.any() else 0.0
    return loss, stats


def compute_in_batch_contrastive_loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """In-batch contrastive loss of LLM encoders (r2ec.txt §3.1, Eq. 1): the "w/o reasoning" control (§5.3).

    scores: [B, C] s(u, v) = <h_u, e_v>/τ (τ already applied) against the in-batch items; labels: long [B]
    -> scalar  L = −1/B Σ_u log( exp s(u, v+_u) / Σ_{v ∈ I_B} exp s(u, v) ).
    """
    return F.cross_entropy(scores.float(), labels)
