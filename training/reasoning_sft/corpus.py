"""GREAM's reverse-reasoning data D_reason for the tiny policy (gream.txt §4.2, Fig. 2 left).

For each training sample the teacher is given the known next item and writes a plausible five-stage path
from the history to it (`Teacher.write(sample, target=sample.target)`). The record keeps the CoT already
cut into word-level pieces (`words.render_cot_pieces`), so the vocabulary (`corpus_words`) and the SFT
examples (`examples.build_reasoning_examples`) are made from the very same text.

This is SFT data only: the history-only CoT the Rechead reads (`training/reasoning/`) is never used here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from training.cot.teacher import Teacher
from training.data.types import Sample
from training.eval.subset import select_subset
from training.reasoning_sft.words import ItemTokens, collect_cot_words, render_cot_pieces


@dataclass(frozen=True)
class ReasoningRecord:
    """sample: the training sample (its target is the answer); cot_pieces: the CoT as vocabulary pieces."""

    sample: Sample
    cot_pieces: tuple[str, ...]


def write_reasoning_corpus(teacher: Teacher, samples: Sequence[Sample], item_tokens: ItemTokens,
                           known: set[str] | None = None, max_samples: int = 0, seed: int = 0) -> list[ReasoningRecord]:
    """One reverse-reasoning record per sample whose target has an identifier (`known`, when given).

    max_samples > 0: a seeded subset (`select_subset`, original order kept) before the teacher runs.
    """
    usable = [s for s in samples if known is None or s.target in known]
    return [ReasoningRecord(s, tuple(render_cot_pieces(teacher.write(s, target=s.target), item_tokens)))
            for s in select_subset(usable, max_samples, seed)]


def corpus_words(records: Sequence[ReasoningRecord]) -> list[str]:
    """The CoT words of the corpus (identifier tokens left out), for `collect_vocabulary(extra_words=...)`."""
    return collect_cot_words(r.cot_pieces for r in records)
