"""Row helpers of the reasoning benchmark (`benchmarks/reasoning.py`): decode once, rank many ways.

- `decode_reasoning`: the reasoning policy's CoTs and their answer beams, decoded exactly as
  `ReasoningRecommender.reason` does (same prompt, `generate_thoughts`, trie beam after `<answer>`), but the
  per-CoT beams are kept, so Pass@1/5/10 come from ONE draw of 10 CoTs per sample (Pass@K uses the first K).
- `passk_rankings`: pure; per K, the `passk.rank_union` ranking of the first K beams and Pass@K.
- `FixedRankings`: precomputed rankings as a `Recommender`, so the one evaluator scores them.
- `PolicyCotFeaturizer`: Rechead texts from the policy's own CoT and answer (what serving reads from Redis:
  `serving/reasoning.py` builds `RecheadTexts(history text, cached cot, first catalog item of the answer)`).
- `restrict_predictions`: a predictions file cut to some sample ids, for paired intervals on a sub-subset.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from training.data.types import Sample
from training.reasoning.features import RecheadFeaturizer, RecheadTexts, blind_to_target, history_text
from training.reasoning_sft.decode import generate_thoughts
from training.reasoning_sft.passk import Beam, answers_of, pass_at_k, rank_union


@dataclass(frozen=True)
class DecodedSample:
    """One sample's CoTs (decoded text), whether the policy closed each itself, and each CoT's answer beam."""

    sample_id: str
    thoughts: tuple[str, ...]
    closed: tuple[bool, ...]
    beams: tuple[Beam, ...]


def passk_rankings(beams: Sequence[Sequence[Beam]], targets: Sequence[str], ks: Sequence[int],
                   k: int) -> dict[int, tuple[list[list[str]], list[bool]]]:
    """Per K in ks: (per sample `rank_union(first K beams, k)`, per sample Pass@K of the first K answers).

    beams: [n_samples][n_cots] beams (each [(item, log P)], best first); every K must be <= n_cots.
    """
    out = {}
    for K in ks:
        if any(len(b) < K for b in beams):
            raise ValueError(f"Pass@{K} needs {K} CoTs per sample")
        ranked = [rank_union(b[:K], k) for b in beams]
        hits = [pass_at_k(answers_of(b[:K]), t) for b, t in zip(beams, targets, strict=True)]
        out[K] = (ranked, hits)
    return out


@torch.inference_mode()
def decode_reasoning(recommender, samples: Sequence[Sample], n_cots: int, temperature: float, top_p: float,
                     k: int, batch_rows: int = 64, seed: int = 0,
                     exclude: Sequence[set[str]] | None = None) -> list[DecodedSample]:
    """`ReasoningRecommender.reason`'s two stages on batches of <= batch_rows CoT rows, beams kept.

    recommender: a `ReasoningRecommender` (its prompt, banned tokens, trie beam); exclude: per sample, items
    masked inside the answer beam (as nearline masks the user's history). One torch generator seeded once
    drives all batches, so a run is reproducible for a given batch_rows.
    """
    rec = recommender
    generator = torch.Generator().manual_seed(seed) if temperature > 0 else None
    per_batch = max(1, batch_rows // n_cots)
    out: list[DecodedSample] = []
    for start in range(0, len(samples), per_batch):
        part = samples[start:start + per_batch]
        prompts = [rec.prompt_ids(s) for s in part]
        thoughts = generate_thoughts(rec.model, prompts, n_cots, rec.think_end_id, rec.tokenizer.pad_token_id,
                                     rec.banned, rec.settings.max_think_tokens, temperature, top_p, generator)
        extended = [p + cot + [rec.think_end_id, rec.answer_id]
                    for p, cots in zip(prompts, thoughts, strict=True) for cot, _ in cots]
        masks = None if exclude is None else [e for e in exclude[start:start + per_batch] for _ in range(n_cots)]
        beams = rec.beam.top_items(extended, k, masks)
        for row, (sample, cots) in enumerate(zip(part, thoughts, strict=True)):
            out.append(DecodedSample(
                sample.sample_id,
                tuple(rec.tokenizer.decode(cot, skip_special_tokens=False) for cot, _ in cots),
                tuple(closed for _, closed in cots),
                tuple(tuple(b) for b in beams[row * n_cots:(row + 1) * n_cots])))
    return out


class FixedRankings:
    """A `Recommender` that returns rankings computed beforehand, looked up by sample id."""

    def __init__(self, rankings: dict[str, list[str]], name: str):
        self.rankings, self.name = rankings, name

    def rank(self, samples: Sequence[Sample], k: int, exclude: Sequence[set[str]] | None = None) -> list[list[str]]:
        if exclude is not None:
            raise ValueError("fixed rankings cannot filter seen items afterwards")
        return [list(self.rankings[s.sample_id][:k]) for s in samples]


class PolicyCotFeaturizer(RecheadFeaturizer):
    """A Rechead featurizer whose CoT and answer come from the policy (by sample id), not from a teacher.

    cots: sample_id -> (CoT text, answer item or None). The history text is built as for any Rechead input;
    the answer must be a catalog item to count as parsed (else r_sel = r_x, rporec.txt Eq. 2).
    """

    def __init__(self, base: RecheadFeaturizer, cots: dict[str, tuple[str, str | None]]):
        super().__init__(base.catalog, "none", encoder=base.encoder, cache_dir=base.cache_dir,
                         item_text_embeddings=base.item_text_embeddings(), batch_size=base.batch_size)
        self.cot, self.cots = "policy", cots  # texts_for below is the only place the mode is read

    def texts_for(self, sample: Sample) -> RecheadTexts:
        cot, answer = self.cots[sample.sample_id]
        blind = blind_to_target(sample)
        return RecheadTexts(history_text(blind, self.catalog), cot, answer if answer in self.catalog else None)


def first_unseen(beam: Beam, history: Sequence[str]) -> str | None:
    """The best beam item not in the history (nearline masks seen items in the answer), None if all are seen."""
    seen = set(history)
    return next((item for item, _ in beam if item not in seen), None)


def restrict_predictions(source: Path, sample_ids: Sequence[str], target: Path) -> Path:
    """Write the rows of `source` whose sample_id is in `sample_ids`, in `source` order; all ids must be there."""
    wanted = set(sample_ids)
    rows = [line for line in Path(source).read_text().splitlines() if json.loads(line)["sample_id"] in wanted]
    if len(rows) != len(wanted):
        raise RuntimeError(f"{source} holds {len(rows)} of the {len(wanted)} samples asked for")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(line + "\n" for line in rows))
    return target


def verdict_beats(ci: Sequence[float]) -> str:
    """'met' when the 95 % interval of (row - reference) lies above 0, 'not met' otherwise (with why)."""
    lo, hi = ci
    if lo > 0:
        return "met"
    if hi < 0:
        return "not met (significantly worse)"
    return "not met (difference not significant)"


def verdict_reaches(mean_diff: float, ci: Sequence[float]) -> str:
    """'met' when the row is at least as good on average (mean difference >= 0) and not significantly worse."""
    lo, hi = ci
    if mean_diff >= 0 and hi >= 0:
        return "met" if lo >= 0 else "met on average (interval includes 0)"
    return "not met (significantly worse)" if hi < 0 else "not met on average (interval includes 0)"
