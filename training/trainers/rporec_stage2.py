"""RPORec stage II (rporec.txt §2.2, Alg. 1 lines 13-20): GRPO on the reasoning policy rewarded by the frozen
stage-I Rechead, the gradient on the highest-entropy tokens.

The rollouts are those of `reasoning_rl` (sampled CoT, then an answer drawn under the item trie); this module
re-scores them. Two terms change meaning on this project's two-stage decoder, and say so: the answer follows a
forced `</think><answer>` and is always a catalog item, so every completion is well formed with nothing outside
its blocks — r_fmt = 1 and r_clean = 1 for all (constants: they never move a GRPO advantage). The others:

- r_ndcg: the frozen Rechead's user vector from (history, this CoT, this answer) scores the target among it and
  k sampled negatives (the same negatives for the G rollouts of a sample; seen items never drawn);
- r_sim / r_comp: ŷ is a programmatic summary — the CoT with every repeated clause dropped (`summarize_cot`),
  not an LLM's; r_comp = |ŷ|/|y| in words rewards CoTs that do not repeat themselves;
- r_ent: mean entropy of the CoT's top-20 % tokens minus its mean (Eq. 11-12);
- r = r_fmt · Σ α_i r_i (Eq. 7); the focus mask keeps the top-ρ entropy action tokens of the batch (App. A.1).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from training.data.types import Sample
from training.reasoning.features import RecheadTexts, blind_to_target, history_text
from training.rewards.rporec import (
    compute_candidate_ndcg_reward,
    compute_compression_reward,
    compute_entropy_reward,
    compute_rporec_reward,
    compute_similarity_reward,
    high_entropy_token_mask,
)
from training.rollout.scoring import completion_entropies
from training.trainers.reasoning_rl import action_weights

CLAUSE_BREAK = re.compile(r"\s*[.,;:!?\n]\s*")
WORD = re.compile(r"\w+")  # |y| and |ŷ| count words, not punctuation


def summarize_cot(text: str) -> str:
    """The programmatic ŷ: the CoT's clauses (split at . , ; : ! ? and newlines) with every repeat dropped, in order.
    "a , b . a , c" -> "a. b. c"."""
    seen, kept = set(), []
    for clause in CLAUSE_BREAK.split(text):
        key = " ".join(clause.lower().split())
        if key and key not in seen:
            seen.add(key)
            kept.append(clause.strip())
    return ". ".join(kept)


def sample_negatives(n_items: int, excluded: set[int], k: int, rng: random.Random) -> list[int]:
    """k distinct catalog indices outside `excluded` (the target and the history), fewer when the catalog runs out."""
    pool = [i for i in range(n_items) if i not in excluded]
    return rng.sample(pool, min(k, len(pool)))


class RecheadRewarder:
    """Scores reasoning rollouts with the frozen Rechead (a `RecheadRecommender`) and the RPORec reward terms."""

    def __init__(self, rechead, negatives: int = 100, alphas: dict[str, float] | None = None, seed: int = 0,
                 focus: float | None = 0.2):
        self.rechead, self.negatives, self.alphas, self.focus = rechead, negatives, alphas, focus
        self.rng = random.Random(seed)
        if rechead.featurizer.encoder is None:  # load MiniLM once, not at every encode call of every step
            from training.models.text_encoder import load_text_encoder

            rechead.featurizer.encoder = load_text_encoder()

    @classmethod
    def from_bundle(cls, bundle: str | Path, **kwargs) -> RecheadRewarder:
        from training.inference import load_recommender

        rechead = load_recommender(bundle, "cpu")
        if rechead.manifest["kind"] != "rechead":
            raise ValueError(f"{bundle} holds a {rechead.manifest['kind']!r} bundle; stage II needs a Rechead bundle")
        return cls(rechead, **kwargs)

    def rescore(self, rollout, batch: Sequence[Sample], reasoner):
        """The rollout with RPORec rewards [B, G] and the high-entropy focus mask [B·G, T]."""
        group = rollout.rewards.shape[1]
        cots = [reasoner.tokenizer.decode(c[:c.index(reasoner.think_end_id)], skip_special_tokens=False)
                for c in rollout.completions]
        entropies = completion_entropies(reasoner.model, rollout.prompts, rollout.completions,
                                         reasoner.tokenizer.pad_token_id)
        actions = action_weights(rollout.actions)
        n, memo = len(cots), self.rechead.featurizer.memo
        fresh = [c for c in dict.fromkeys(cots) if c not in memo]
        memo.update(zip(fresh, self.rechead.featurizer.encode(fresh), strict=True))  # each CoT encoded once a step
        try:
            ndcg, summary = self.ndcg_terms(batch, cots, rollout.answers, group), self.summary_terms(cots)
        finally:
            for text in fresh:
                memo.pop(text, None)  # the memo keeps histories (they recur), not the step's CoTs
        terms = {"fmt": [1.0] * n, "clean": [1.0] * n, "ndcg": ndcg, **summary,
                 "ent": compute_entropy_reward([e[:c.index(reasoner.think_end_id)].tolist() for e, c in
                                                zip(entropies, rollout.completions, strict=True)])}
        rewards = torch.tensor(compute_rporec_reward(terms, self.alphas), dtype=torch.float32).view(-1, group)
        focus = None if self.focus is None else high_entropy_token_mask(entropies, actions, self.focus).float()
        stats = {**rollout.stats, "reward_mean": rewards.mean().item(),
                 **{f"r_{name}": float(np.mean(values)) for name, values in terms.items()}}
        return replace(rollout, rewards=rewards, focus=focus, stats=stats)

    def ndcg_terms(self, batch: Sequence[Sample], cots: list[str], answers: list[str], group: int) -> list[float]:
        catalog = self.rechead.catalog
        texts, candidates = [], []
        for b, sample in enumerate(batch):
            blind = blind_to_target(sample)
            history = history_text(blind, catalog)
            target = catalog.index_of(sample.target)
            seen = {catalog.index_of(i) for i in sample.history if i in catalog}
            candidates.append([target, *sample_negatives(len(catalog), seen | {target}, self.negatives, self.rng)])
            for row in range(b * group, (b + 1) * group):
                answer = answers[row] if answers[row] in catalog else None
                texts.append(RecheadTexts(history, cots[row], answer))
        inputs = self.rechead.featurizer.embed(texts, memoize=True)
        with torch.no_grad():
            users = self.rechead.model.encode_user(inputs.history_emb, inputs.cot_emb, inputs.answer_emb,
                                                   inputs.answer_parsed).float()
        items = torch.from_numpy(self.rechead.item_matrix)
        scores = [users[row] @ items[candidates[row // group]].T for row in range(len(texts))]
        return compute_candidate_ndcg_reward(torch.stack(scores).cpu())

    def summary_terms(self, cots: list[str]) -> dict[str, list[float]]:
        summaries = [summarize_cot(c) for c in cots]
        encode = self.rechead.featurizer.encode
        return {"sim": compute_similarity_reward(torch.from_numpy(encode(cots, memoize=True)),
                                                 torch.from_numpy(encode(summaries))),
                "comp": compute_compression_reward([len(WORD.findall(c)) for c in cots],
                                                   [len(WORD.findall(s)) for s in summaries])}
