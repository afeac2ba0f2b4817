"""Pass@K of reasoning mode and the ranking of the union of K answers (gream.txt §6.1.2, Table 2 "Reason").

GREAM samples K reasoning outputs per user (temperature 0.7, top-p 0.9); Pass@K is 1 when any of the K
answers is the target. Here each CoT's answer is the best item of the trie-constrained beam after
`<answer>`, so every answer is a real item, and each CoT also yields a beam of runners-up with their
log P(item | prompt, CoT).

`rank_union` turns the K beams into one ranked list:

1. the answers (each CoT's first item) come first, ordered by their best log P over all K beams;
2. then the other beam items, by the same best log P;
3. ties keep the order of first appearance (CoT 1's beam first, each beam best first).

So the union U of the K answers (at most K distinct items) is always the head of the list: the target is
among the first |U| items exactly when Pass@K = 1. When CoTs agree (|U| < K), runners-up fill the list up to k,
so HR@K of `rank(samples, K)` is >= Pass@K (equal when the K answers are distinct); report Pass@K from the
answers themselves (`ReasoningRecommender.reason(...)[i].answers`). With one greedy CoT the list is that
CoT's beam (Pass@1 at its head).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

Beam = Sequence[tuple[str, float]]


def answers_of(beams: Sequence[Beam]) -> list[str]:
    """Each CoT's answer (its beam's first item), in CoT order; a CoT with an empty beam gives none."""
    return [beam[0][0] for beam in beams if beam]


def pass_at_k(answers: Collection[str], target: str) -> bool:
    """Pass@K for one sample: any of the K answers is the target."""
    return target in answers


def best_logprobs(beams: Sequence[Beam]) -> dict[str, float]:
    """item -> its highest log P over the beams, in order of first appearance."""
    best: dict[str, float] = {}
    for beam in beams:
        for item, logprob in beam:
            if item not in best or logprob > best[item]:
                best[item] = logprob
    return best


def rank_union(beams: Sequence[Beam], k: int) -> list[str]:
    """Top-k distinct items of the K beams by the module's rules (answers first, then best log P)."""
    best = best_logprobs(beams)
    answers = set(answers_of(beams))
    order = {item: position for position, item in enumerate(best)}
    ranked = sorted(best, key=lambda item: (item not in answers, -best[item], order[item]))
    return ranked[:k]
