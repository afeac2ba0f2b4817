"""Policy losses and auxiliary loss terms (registry), token-level and pure.

Conventions: `[B, T]` tensors hold one row per generated sequence (padded);
`weights` [B, T] is the token mask times the certainty-aware weight of
`masks.certainty_mask` (0 on padding). Padded positions must hold finite log-probs.
Advantages are per sequence `[B]` (broadcast to tokens) or per token `[B, T]`.
Every registered loss returns `(loss, stats)`: a scalar to minimise and plain floats for the logs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from training.algorithms.reduce import Aggregation, aggregate, broadcast_advantages, mean_live, ratio_stats, share

LossFn = Callable[..., tuple[torch.Tensor, dict[str, float]]]
LOSSES: dict[str, LossFn] = {}


def register_loss(name: str) -> Callable[[LossFn], LossFn]:
    def deco(fn: LossFn) -> LossFn:
        LOSSES[name] = fn
        return fn

    return deco


def get_loss(name: str) -> LossFn:
    """The loss registered as `name`; KeyError listing the known names otherwise."""
    if name not in LOSSES:
        raise KeyError(f"unknown loss {name!r}; known: {sorted(LOSSES)}")
    return LOSSES[name]


@register_loss("clipped_pg")
def compute_clipped_pg_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    weights: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: float | None = None,
    agg: Aggregation = "token",
) -> tuple[torch.Tensor, dict[str, float]]:
    """Token-level clipped surrogate (PPO/GRPO; riser.txt §2.3 Eq. 2, gream.txt §4 Eq. 11-12).

    logprobs, old_logprobs, weights: [B, T]; advantages: [B] or [B, T] -> scalar loss, stats.
    r = exp(logp - logp_old);  l = max(-A r, -A clip(r, 1 - clip_low, 1 + clip_high))
    dual clip c > 1 (A < 0 only): l = min(l, -c A), bounding the loss when r >> 1.
    Reduced by `aggregate` (default token mean: normaliser = sum of weights).
    stats: clip_fraction (live tokens where the clipped branch is taken), dual_clip_fraction, approx_kl.
    """
    if dual_clip is not None and dual_clip <= 1.0:
        raise ValueError(f"dual_clip must be > 1, got {dual_clip}")
    adv = broadcast_advantages(advantages, logprobs)
    log_ratio = logprobs - old_logprobs
    ratio = log_ratio.exp()
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    per_token = torch.maximum(unclipped, clipped)
    dual_hit = torch.zeros_like(per_token, dtype=torch.bool)
    if dual_clip is not None:
        bound = -dual_clip * adv
        dual_hit = (adv < 0) & (per_token > bound)
        per_token = torch.where(dual_hit, bound, per_token)
    stats = {
        "clip_fraction": share(clipped > unclipped, weights),
        "dual_clip_fraction": share(dual_hit, weights),
        **ratio_stats(log_ratio, weights),
    }
    return aggregate(per_token, weights, agg), stats


@register_loss("unclipped_pg")
def compute_unclipped_pg_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    weights: torch.Tensor,
    agg: Aggregation = "sequence",
) -> tuple[torch.Tensor, dict[str, float]]:
    """RecLLM-R1's unclipped ratio objective (recllm_r1.txt §3.3, the J_GRPO display).

    logprobs, old_logprobs, weights: [B, T]; advantages: [B] or [B, T] -> scalar loss, stats.
    l = -A exp(logp - logp_old), reduced as the paper's 1/G sum_k 1/|o_k| sum_t (agg="sequence").
    The paper's -beta k3 term is the separate `k3_kl` loss: total = this + beta * k3_kl(agg="sequence").
    """
    adv = broadcast_advantages(advantages, logprobs)
    log_ratio = logprobs - old_logprobs
    return aggregate(-adv * log_ratio.exp(), weights, agg), ratio_stats(log_ratio, weights)


def select_kl_cov_outliers(
    logprobs: torch.Tensor, advantages: torch.Tensor, candidates: torch.Tensor, ratio: float = 0.005
) -> torch.Tensor:
    """KL-Cov outlier tokens (riser.txt §3.2.3, Eq. 8; Alg. 1 lines 7-8).

    logprobs [B, T] (current policy, detached here), advantages [B] or [B, T], candidates bool [B, T]
    (valid tokens of successful groups) -> bool [B, T].
    Cov_j = (logp_j - mean_C logp)(A_j - mean_C A), means over the candidate set C; the
    max(1, floor(ratio |C|)) candidates with the largest Cov are outliers (none if C is empty).
    """
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"kl_cov ratio must be in (0, 1], got {ratio}")
    cand = candidates.bool()
    out = torch.zeros(cand.shape, dtype=torch.bool, device=cand.device)
    n = int(cand.sum().item())
    if n == 0:
        return out
    lp = logprobs.detach()[cand]
    adv = broadcast_advantages(advantages, logprobs).detach()[cand]
    cov = (lp - lp.mean()) * (adv - adv.mean())
    top = torch.topk(cov, max(1, int(n * ratio + 1e-9))).indices  # 1e-9: 200 * 0.005 must give 1
    flat_pos = torch.nonzero(cand.reshape(-1), as_tuple=True)[0][top]
    out.view(-1)[flat_pos] = True
    return out


@register_loss("kl_cov")
def compute_kl_cov_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    weights: torch.Tensor,
    candidates: torch.Tensor | None = None,
    ratio: float = 0.005,
    beta_kl: float = 1.0,
    agg: Aggregation = "token",
) -> tuple[torch.Tensor, dict[str, float]]:
    """RISER's modified GRPO loss with KL-Cov (riser.txt §3.2.3, Eq. 8-9; App. C: ratio 5e-3, beta_KL 1).

    logprobs, old_logprobs, weights: [B, T]; advantages: [B] or [B, T]; candidates: bool [B, T],
    default weights > 0 (RISER computes this loss on the successful groups only) -> scalar, stats.
    l_j = -r_j A_j + 1[j in outliers] beta_KL |log r_j|,  r_j = exp(logp_j - logp_old_j)   (Eq. 9, unclipped)
    then weighted by the certainty mask (in `weights`) and reduced by `aggregate`.
    """
    if candidates is None:
        candidates = weights > 0
    outliers = select_kl_cov_outliers(logprobs, advantages, candidates, ratio)
    log_ratio = logprobs - old_logprobs
    penalty = torch.where(outliers, beta_kl * log_ratio.abs(), torch.zeros_like(log_ratio))
    per_token = -broadcast_advantages(advantages, logprobs) * log_ratio.exp() + penalty
    stats = {"n_outliers": float(outliers.sum().item()), "outlier_fraction": share(outliers, weights),
             **ratio_stats(log_ratio, weights)}
    return aggregate(per_token, weights, agg), stats


def _masked_mean_logprob(logprobs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """r'_M(y|x) = sum_j M_j logp_j / sum_j M_j per row (riser.txt Eq. 7); 0 for a row without weight."""
    total = weights.sum(dim=-1)
    contrib = torch.where(weights > 0, weights * logprobs, torch.zeros_like(logprobs)).sum(dim=-1)
    return contrib / torch.where(total > 0, total, torch.ones_like(total))


@register_loss("simpo")
def compute_simpo_loss(
    chosen_logprobs: torch.Tensor,
    chosen_weights: torch.Tensor,
    rejected_logprobs: torch.Tensor,
    rejected_weights: torch.Tensor,
    beta: float = 5.0,
    gamma: float = 3.5,
) -> tuple[torch.Tensor, dict[str, float]]:
    """SimPO on all-failed groups (riser.txt §3.1 Eq. 3 with the masked reward of §3.2.2 Eq. 7).

    chosen_*: [P, Tc] target item tokens, one row per pair; rejected_*: [P, Tr] the wrong sampled item.
    L = mean_pairs -log sigma(beta (r'_M(y_c) - r'_M(y_r)) - gamma). App. C: beta in {5, 10},
    gamma/beta in {0.7, 1.0}. P = 0 gives 0. The weight w of L_RISER = w L_SimPO + L'_GRPO is the caller's.
    stats: n_pairs, margin (mean r'_c - r'_r), accuracy (share of pairs with r'_c > r'_r).
    """
    margin = _masked_mean_logprob(chosen_logprobs, chosen_weights) - _masked_mean_logprob(
        rejected_logprobs, rejected_weights
    )
    n_pairs = margin.shape[0]
    if n_pairs == 0:
        return chosen_logprobs.sum() * 0.0, {"n_pairs": 0.0, "margin": 0.0, "accuracy": 0.0}
    loss = -F.logsigmoid(beta * margin - gamma).mean()
    stats = {"n_pairs": float(n_pairs), "margin": float(margin.detach().mean().item()),
             "accuracy": float((margin.detach() > 0).float().mean().item())}
    return loss, stats


def compute_k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(pi_theta || pi_ref) (recllm_r1.txt §3.3; GRPO's reference KL).

    [B, T], [B, T] -> [B, T]:  k3 = exp(ref - logp) - (ref - logp) - 1  (>= 0, 0 where equal).
    """
    delta = ref_logprobs - logprobs
    return torch.expm1(delta) - delta


@register_loss("k3_kl")
def compute_k3_kl_loss(
    logprobs: torch.Tensor, ref_logprobs: torch.Tensor, weights: torch.Tensor, agg: Aggregation = "token"
) -> tuple[torch.Tensor, dict[str, float]]:
    """`compute_k3_kl` reduced by `aggregate`; the caller scales it by beta. stats: kl (mean over live tokens)."""
    per_token = compute_k3_kl(logprobs, ref_logprobs)
    return aggregate(per_token, weights, agg), {"kl": mean_live(per_token, weights)}
