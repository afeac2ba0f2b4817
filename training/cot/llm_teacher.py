"""The LLM teacher: a chat LLM writes GREAM's five-stage chain of thought (gream.txt §4.2, Appendix C).

GREAM synthesises its reasoning data with an LLM under a DeepSeek-R1-style system prompt that fixes the
format `<think>…</think><answer>…</answer>` and names the stages (gream.txt §4.2, prompt in Appendix C).
`LLMTeacher` does that with any HF causal-LM folder that has a chat template (default SmolLM2-135M-Instruct,
`training/models/smollm2.py`), through HF `generate` or in-process vLLM (`llm_generate.py`); the prompt
(`llm_prompt.py`) lists the history's titles and never reads `sample.target`: only an explicit `target`
(GREAM's reverse reasoning) enters it, named as the item to justify.

Prefill: the assistant turn opens with `<think>\\n` by default (`prefill=""` turns it off). Measured on 8
ML-100k prompts (SmolLM2, 96 new tokens) the keep rate is 0/8 either way (greedy, HF and vLLM; sampled
T=0.7, top-p 0.9 on vLLM): the model follows the one-shot five steps but does not close `</think>` in time.
The prefill is kept because it fixes the opening tag: without it, a repetition penalty of 1.1 made the
model write "<thought-out-action>"-style tags the parser cannot read, and it costs nothing.

Keep rule: an output is kept only when `parse_reasoning` resolves its answer to a catalog item (title
resolver, plus a retry without a trailing "(genres)", `make_answer_resolver`), it has a non-empty think
block (an answer without reasoning is no CoT) and, given a target, the item is the target. Otherwise
`write` returns None (so the `Teacher` protocol's `-> CoT` is `CoT | None` here) and `stats` says why:
`ParseStats` reasons, then `REJECTIONS` ("empty_think", "target_mismatch").

Mapping onto `CoT`: stages from `llm_prompt.split_stages`; no stage marker -> the whole think text is the
evidence; missing stages stay "" (nothing is invented); stage 4 -> recommendation (first sentence) +
justification (the rest); denoised history = history items whose title stage 5 mentions, or the whole
history when it names none (nothing filtered). `facts`: the raw think text ("think"), the whole output
("output"), "answer_text", "stages_found", "denoised_from_text", "outside_chars", "reverse".
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from training.catalog import Catalog
from training.cot.llm_generate import Backend, GenerateFn, RenderFn, SamplingSettings, plain_chat_render
from training.cot.llm_prompt import (
    DEFAULT_PREFILL,
    build_chat_messages,
    make_answer_resolver,
    mentioned_items,
    split_stages,
)
from training.cot.parse import ParseStats, parse_reasoning
from training.cot.teacher import CoT
from training.data.types import Sample

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
REJECTIONS = ("empty_think", "target_mismatch")


@dataclass
class TeacherStats:
    """Every generated output, counted once: `parse` (failures by reason), `rejected` (parsed outputs
    refused, by REJECTIONS reason), kept. outputs = parse.total = kept + sum(rejected) + sum(parse.failures).
    answer_in_history: kept outputs recommending an item of the history (counted, not rejected).
    generated_tokens: tokens the generator reports having written (0 for a generator that does not count)."""

    parse: ParseStats = field(default_factory=ParseStats)
    kept: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    answer_in_history: int = 0
    generated_tokens: int = 0

    @property
    def keep_rate(self) -> float:
        """kept / outputs (0.0 before any output)."""
        return self.kept / self.parse.total if self.parse.total else 0.0

    def as_dict(self) -> dict[str, object]:
        return {"outputs": self.parse.total, "kept": self.kept, "keep_rate": self.keep_rate,
                "rejected": {reason: self.rejected[reason] for reason in REJECTIONS},
                "answer_in_history": self.answer_in_history,
                "generated_tokens": self.generated_tokens, "parse": self.parse.as_dict()}


class LLMTeacher:
    """`Teacher` over a chat LLM (module docstring).

    generate: rendered prompts -> completions (`llm_generate.HFGenerator` / `VLLMGenerator`, or a fake);
    render: chat messages -> prompt text (the tokenizer's chat template; `plain_chat_render` by default);
    prefill: text opening the assistant turn ("" for none); max_history: most recent history items listed.
    """

    def __init__(self, catalog: Catalog, generate: GenerateFn, render: RenderFn = plain_chat_render,
                 prefill: str = DEFAULT_PREFILL, max_history: int = 20):
        self.catalog, self.generate, self.render = catalog, generate, render
        self.prefill, self.max_history = prefill, max_history
        self.resolve = make_answer_resolver(catalog)
        self.stats = TeacherStats()

    @classmethod
    def from_folder(cls, catalog: Catalog, folder: Path | None = None, backend: Backend = "hf",
                    sampling: SamplingSettings | None = None, **options) -> LLMTeacher:
        """A teacher over an HF chat-model folder (default: SmolLM2-135M-Instruct, fetched or cached);
        options: `prefill`, `max_history`."""
        from training.cot.llm_generate import build_generator, load_chat_tokenizer, make_chat_renderer

        if folder is None:
            from training.models.smollm2 import fetch_smollm2

            folder = fetch_smollm2()
        tokenizer = load_chat_tokenizer(Path(folder))
        generate = build_generator(Path(folder), tokenizer, backend, sampling or SamplingSettings())
        return cls(catalog, generate, make_chat_renderer(tokenizer), **options)

    def build_prompt(self, sample: Sample, target: str | None = None) -> str:
        """The rendered chat prompt plus the prefill; `sample.target` is not read."""
        messages = build_chat_messages(self.catalog, sample.history, target, self.max_history)
        return self.render(messages) + self.prefill

    def write(self, sample: Sample, target: str | None = None) -> CoT | None:
        """One sample's CoT, or None when the output does not parse, names no item, has no reasoning or
        misses the target."""
        return self.write_many([sample], [target])[0]

    def write_many(self, samples: Sequence[Sample], targets: Sequence[str | None] | None = None) -> list[CoT | None]:
        """Batched `write`: one generator call for all samples; targets[i] None -> history-only reasoning."""
        targets = list(targets) if targets is not None else [None] * len(samples)
        if len(targets) != len(samples):
            raise ValueError(f"{len(targets)} targets for {len(samples)} samples")
        unknown = [t for t in targets if t is not None and t not in self.catalog]
        if unknown:
            raise ValueError(f"targets not in the catalog: {unknown}")
        if not samples:
            return []
        before = getattr(self.generate, "generated_tokens", 0)
        completions = self.generate([self.build_prompt(s, t) for s, t in zip(samples, targets, strict=True)])
        if len(completions) != len(samples):
            raise RuntimeError(f"the generator returned {len(completions)} completions for {len(samples)} prompts")
        self.stats.generated_tokens += getattr(self.generate, "generated_tokens", 0) - before
        return [self.to_cot(s, self.prefill + c, t) for s, c, t in zip(samples, completions, targets, strict=True)]

    def to_cot(self, sample: Sample, output: str, target: str | None = None) -> CoT | None:
        """Parse one whole output (prefill included), count it, and map it onto `CoT` when kept."""
        parsed = self.stats.parse.add(parse_reasoning(output, self.resolve))
        if not parsed.ok:
            return None
        rejection = ("empty_think" if not (parsed.think or "").strip() else
                     "target_mismatch" if target is not None and parsed.item != target else None)
        if rejection is not None:
            self.stats.rejected[rejection] += 1
            return None
        self.stats.kept += 1
        self.stats.answer_in_history += parsed.item in sample.history
        think = parsed.think or ""
        stages = split_stages(think)
        recommendation, *justification = _SENTENCE_END.split(stages.get(4, ""), maxsplit=1)
        denoised = mentioned_items(self.catalog, sample.history, stages.get(5, ""))
        kept = denoised or tuple(dict.fromkeys(i for i in sample.history if i in self.catalog))
        return CoT(
            evidence=stages.get(1, "") if stages else think.strip(),
            preferences=stages.get(2, ""),
            intent=stages.get(3, ""),
            recommendation=recommendation,
            justification=" ".join(justification),
            denoised_history=kept,
            denoised_names=tuple(self.catalog.display_name(i) for i in kept),
            recommended_item=parsed.item,
            facts={"think": parsed.think, "output": output, "answer_text": parsed.answer_text,
                   "stages_found": tuple(sorted(stages)), "denoised_from_text": bool(denoised),
                   "outside_chars": parsed.outside_chars, "reverse": target is not None},
        )
