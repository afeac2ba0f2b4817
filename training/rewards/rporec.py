"""RPORec stage-II rewards (rporec.txt §2.2, Eq. 7; Alg. 1 lines 16-19) and the high-entropy token mask.

Each reward scores a rollout group and returns one float per completion (the registry's convention).
Inputs are what the RL loop already has: completion texts, the frozen Rechead's candidate scores,
sentence embeddings of the CoT and its summary, lengths, per-token entropies. The paper gives κ = 100
and ρ = 20 %, but no δ, α or NDCG cut-off: the defaults below are ours and say so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from training.prompts import ANSWER, ANSWER_END, THINK, THINK_END
from training.rewards.registry import register_reward

REWARD_TERMS = ("fmt", "clean", "ndcg", "sim", "comp", "ent")  # α0..α5 of Eq. 7, in order
DEFAULT_ALPHAS = dict.fromkeys(REWARD_TERMS, 1.0)  # the paper gives no α: equal weights
DEFAULT_KAPPA = 100.0  # κ of r_clean (§2.2.1)
DEFAULT_DELTA = 0.7  # δ of r_sim: not given in the paper (§2.2.3); a MiniLM cosine of "same meaning"
TOP_ENTROPY_FRACTION = 0.2  # "top 20 %" (§2.2.3) and ρ of App. A.1


class ReasoningParts(NamedTuple):
    """A well-formed completion: CoT y, answer z (both stripped) and the text outside the two blocks."""

    think: str
    answer: str
    outside: str


def split_reasoning_output(text: str) -> ReasoningParts | None:
    """`<think>y</think><answer>z</answer>` -> parts, or None when the format is wrong (§2.2.1).

    Well formed: each of the four tags exactly once, in that order, and a non-empty answer. Text
    before, between or after the blocks is allowed here (r_clean penalises it).
    """
    tags = (THINK, THINK_END, ANSWER, ANSWER_END)
    if any(text.count(tag) != 1 for tag in tags):
        return None
    starts = [text.index(tag) for tag in tags]
    if starts != sorted(starts):
        return None
    ends = [start + len(tag) for start, tag in zip(starts, tags, strict=True)]
    answer = text[ends[2]:starts[3]].strip()
    if not answer:
        return None
    outside = text[:starts[0]] + text[ends[1]:starts[2]] + text[ends[3]:]
    return ReasoningParts(text[ends[0]:starts[1]].strip(), answer, outside)


@register_reward("rporec_fmt")
def compute_format_reward(completions: Sequence[str]) -> list[float]:
    """r_fmt = 1.0 if the completion is `<think>y</think><answer>z</answer>` (§2.2.1), else 0.0."""
    return [0.0 if split_reasoning_output(text) is None else 1.0 for text in completions]


@register_reward("rporec_clean")
def compute_clean_reward(completions: Sequence[str], kappa: float = DEFAULT_KAPPA) -> list[float]:
    """r_clean = max(0, 1 − L_out/κ) (§2.2.1), κ = 100 in the paper.

    L_out: non-whitespace characters outside the think and answer blocks (so the newline between
    the blocks costs nothing). A malformed completion has no "inside": r_clean = 0.
    """
    if kappa <= 0:
        raise ValueError(f"kappa must be > 0, got {kappa}")
    rewards = []
    for text in completions:
        parts = split_reasoning_output(text)
        outside_len = None if parts is None else sum(not ch.isspace() for ch in parts.outside)
        rewards.append(0.0 if outside_len is None else max(0.0, 1.0 - outside_len / kappa))
    return rewards


@register_reward("rporec_ndcg")
def compute_candidate_ndcg_reward(candidate_scores: torch.Tensor | Sequence[Sequence[float]],
                                  cutoff: int | None = None) -> list[float]:
    """r_ndcg = NDCG@k(rank(v+)) over {v+} ∪ N^k_uv, by the frozen Rechead's s(u, v) (§2.2.2, Eq. 5).

    candidate_scores: [G, 1 + k], the positive in column 0. One relevant item, so NDCG = 1/log2(rank + 2)
    with rank the 0-based position of v+; ties count against it (rank = #negatives scoring >= s(u, v+)),
    so a collapsed scorer earns nothing. cutoff: the "@k" (0 at or beyond it); None = k, the number of
    negatives, as the paper writes NDCG@k (only a last place scores 0).
    """
    scores = torch.as_tensor(candidate_scores, dtype=torch.float64)
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError(f"candidate_scores must be [G, 1 + k] with k >= 1, got {tuple(scores.shape)}")
    cut = scores.shape[1] - 1 if cutoff is None else cutoff
    ranks = (scores[:, 1:] >= scores[:, :1]).sum(dim=1).tolist()
    return [1.0 / math.log2(rank + 2) if rank < cut else 0.0 for rank in ranks]


@register_reward("rporec_sim")
def compute_similarity_reward(cot_embeddings: torch.Tensor, summary_embeddings: torch.Tensor,
                              delta: float = DEFAULT_DELTA) -> list[float]:
    """r_sim = 1{cos(e(y), e(ŷ)) > δ} (§2.2.3): the CoT y keeps its meaning in its summary ŷ.

    cot_embeddings, summary_embeddings: [G, D] sentence embeddings (e = all-MiniLM-L6-v2 here).
    """
    cos = F.cosine_similarity(torch.as_tensor(cot_embeddings), torch.as_tensor(summary_embeddings), dim=-1)
    return [1.0 if c > delta else 0.0 for c in cos.tolist()]


@register_reward("rporec_comp")
def compute_compression_reward(cot_lengths: Sequence[int], summary_lengths: Sequence[int]) -> list[float]:
    """r_comp = clip(|ŷ|/|y|, 0, 1) (§2.2.3): high when the summary cannot shorten the CoT much.

    Lengths in any one unit (tokens or words), per completion; an empty CoT (|y| = 0) scores 0.
    """
    return [0.0 if y_len <= 0 else min(1.0, max(0.0, s_len / y_len))
            for y_len, s_len in zip(cot_lengths, summary_lengths, strict=True)]


def top_count(n: int, fraction: float = TOP_ENTROPY_FRACTION) -> int:
    """How many of n tokens are the "top fraction": ceil(fraction·n), at least 1 when n > 0."""
    return max(1, math.ceil(fraction * n - 1e-9)) if n > 0 else 0  # 1e-9: 0.2 * 15 must give 3


@register_reward("rporec_ent")
def compute_entropy_reward(token_entropies: Sequence[Sequence[float]],
                           fraction: float = TOP_ENTROPY_FRACTION) -> list[float]:
    """r_ent = E_20% − E_μ (§2.2.3): mean entropy of the CoT's top-20 % tokens minus its mean entropy.

    token_entropies: per completion, E_t (Eq. 11) of each CoT token. Always >= 0; 0 for an empty CoT.
    """
    rewards = []
    for entropies in token_entropies:
        values = sorted((float(e) for e in entropies), reverse=True)
        top = values[:top_count(len(values), fraction)]
        rewards.append(sum(top) / len(top) - sum(values) / len(values) if values else 0.0)
    return rewards


@register_reward("rporec")
def compute_rporec_reward(terms: Mapping[str, Sequence[float]],
                          alphas: Mapping[str, float] | None = None) -> list[float]:
    """r = r_fmt · (α0 r_fmt + α1 r_clean + α2 r_ndcg + α3 r_sim + α4 r_comp + α5 r_ent) (Eq. 7).

    terms: each of REWARD_TERMS -> G floats (pass 0.0 for terms a malformed completion cannot have; the
    r_fmt factor zeroes it anyway). alphas: term -> α, unnamed terms keep DEFAULT_ALPHAS (all 1.0; the
    paper gives none). A term with α = 0 may be left out of `terms` (the -clean/-sim/... ablations).
    """
    weights = {**DEFAULT_ALPHAS, **(alphas or {})}
    if unknown := sorted(set(weights) - set(REWARD_TERMS)):
        raise ValueError(f"unknown reward terms {unknown}; known: {list(REWARD_TERMS)}")
    used = [name for name in REWARD_TERMS if weights[name] != 0.0 or name == "fmt"]
    if missing := [name for name in used if name not in terms]:
        raise ValueError(f"missing reward terms {missing} (or give them alpha 0)")
    columns = list(zip(*(terms[name] for name in used), strict=True))
    return [row[0] * sum(weights[name] * value for name, value in zip(used, row, strict=True)) for row in columns]


def compute_token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """E_t = −Σ_v π(v) log π(v) over the vocabulary (rporec.txt Eq. 11): logits [..., V] -> [...]."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    return -(log_probs.exp() * log_probs).sum(dim=-1)


def high_entropy_token_mask(entropies: torch.Tensor, token_mask: torch.Tensor,
                            fraction: float = TOP_ENTROPY_FRACTION) -> torch.Tensor:
    """S = {t | E_t >= τ_ρ^B} (rporec.txt App. A.1; Alg. 1 line 19): keep the gradient on the top-ρ tokens.

    entropies: [B, T]; token_mask: [B, T] (bool or 0/1, live generated tokens) -> bool [B, T].
    τ is the top_count(n_live, ρ)-th largest live entropy of the whole (mini-)batch, not per row; ties
    at τ are all kept (>=, as printed). Dead positions are never kept.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    live = token_mask > 0
    values = entropies.detach()[live]
    if values.numel() == 0:
        return live
    threshold = torch.topk(values, top_count(values.numel(), fraction)).values[-1]
    return live & (entropies.detach() >= threshold)
