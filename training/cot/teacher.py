"""The chain-of-thought record and the `Teacher` protocol (gream.txt §4.2).

GREAM's synthetic CoT is a five-stage logical chain (gream.txt §4.2):
behavioural evidence -> latent preferences -> intent -> recommendation with a
justification -> denoised sequence rewriting. A teacher writes one `CoT` per
sample: from the history alone (`target=None`), or, for GREAM's
reverse-reasoning SFT data, as a plausible causal path towards a known target.

`CoT.text()` is what goes between `<think>` and `</think>`
(`training.prompts.format_reasoning_target`); the answer tag holds the
recommended item's identifier, written by the caller's identifier scheme.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from training.data.types import Sample

STAGE_LABELS = (
    "Step 1, behavioural evidence",
    "Step 2, latent preferences",
    "Step 3, intent",
    "Step 4, recommendation",
    "Step 5, denoised history",
)


@dataclass(frozen=True)
class CoT:
    """One five-stage chain of thought.

    evidence, preferences, intent, recommendation, justification: the stage texts.
    denoised_history: raw item ids kept by the rewriting stage, oldest first (a subsequence of the history).
    denoised_names: how each kept item is written in `text()` by default (same length; titles for text models).
    recommended_item: raw id of the recommended item (the answer), None if the teacher gave none.
    facts: the structured data every claim in the text was rendered from (teacher-specific keys);
        not part of equality or hashing.
    """

    evidence: str
    preferences: str
    intent: str
    recommendation: str
    justification: str
    denoised_history: tuple[str, ...]
    denoised_names: tuple[str, ...] = ()
    recommended_item: str | None = None
    facts: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.denoised_names and len(self.denoised_names) != len(self.denoised_history):
            raise ValueError(
                f"{len(self.denoised_names)} names for {len(self.denoised_history)} denoised history items"
            )

    def text(self, write_item: Callable[[str], str] | None = None, separator: str = "; ") -> str:
        """The five stages, one per line, labelled "Step k, <stage>: ...".

        write_item: raw id -> how the denoised history writes it; default: `denoised_names`, or the raw
        ids when there are none. separator: between denoised items. For a word-level tokenizer (the tiny
        policy) write item tokens space-separated and use a separator with spaces, e.g.
        `text(lambda i: " ".join(scheme.item_tokens(i)), " ")`, or "<s2_0>;" becomes one unknown word.
        """
        if write_item is not None:
            history = [write_item(item) for item in self.denoised_history]
        else:
            history = list(self.denoised_names or self.denoised_history)
        stages = (
            self.evidence,
            self.preferences,
            self.intent,
            f"{self.recommendation} {self.justification}".strip(),
            separator.join(history) if history else "(nothing left)",
        )
        return "\n".join(f"{label}: {stage}" for label, stage in zip(STAGE_LABELS, stages, strict=True))


@runtime_checkable
class Teacher(Protocol):
    """Writes a chain of thought for a sample (gream.txt §4.2).

    target: None -> reason from the history alone; the result must not depend on `sample.target`.
    target given -> reverse reasoning: the CoT must recommend and justify exactly `target`.
    """

    def write(self, sample: Sample, target: str | None = None) -> CoT: ...
