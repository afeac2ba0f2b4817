"""Nearline reasoning with any HF chat LLM folder (e.g. `reasonrec models fetch smollm2`) on vLLM.

The prompt is the LLM teacher's (`training/cot/llm_prompt.py`: GREAM's five stages, a one-shot example, the
user's history as titles and genres), without a target. Decoding has two stages, as for the reasoning policy:

1. the CoT after the `<think>` prefill, greedy, stopped at `</think>` or `<answer>` or at `max_think_tokens`;
2. the CoT closed for it (`</think>\\n<answer>`), then up to `ANSWER_TOKENS` greedy tokens stopped at
   `</answer>`; the text is resolved to a catalog item by title (`make_answer_resolver`). A title that names
   no catalog item, or an item of the history, gives an empty answer (counted as a parse failure).

SmolLM2-135M never closes its own `</think>` (reasoning part 1), so stage 2 is what makes its answers usable.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from feature_store.reasoner import ReasonedUser, ReasonerSettings

ANSWER_TOKENS = 24


def text_model_version(model_dir: Path) -> str:
    """`llm:<folder name>:<sha of config.json and the weight files' names and sizes>`."""
    digest = hashlib.sha256((Path(model_dir) / "config.json").read_bytes())
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        digest.update(f"{path.name}:{path.stat().st_size}".encode())
    return f"llm:{Path(model_dir).name}:{digest.hexdigest()[:12]}"


def first_line(text: str) -> str:
    """The first non-empty line of an answer (a model may open `<answer>` with a newline)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


class TextLLMReasoner:
    """Stateful batch function over a chat LLM folder; items come from the catalog of `catalog_bundle`."""

    def __init__(self, model_dir: str, catalog_bundle: str, settings: ReasonerSettings | None = None):
        from vllm import LLM

        from training.bundle import load_bundle_catalog
        from training.cot.llm_generate import load_chat_tokenizer, make_chat_renderer
        from training.cot.llm_prompt import make_answer_resolver
        from training.rollout.vllm_backend import ENGINE_ENV

        for name, value in ENGINE_ENV.items():
            os.environ.setdefault(name, value)
        self.settings = settings or ReasonerSettings()
        if self.settings.threads > 0:
            import torch

            torch.set_num_threads(self.settings.threads)
        self.catalog = load_bundle_catalog(Path(catalog_bundle))
        self.render = make_chat_renderer(load_chat_tokenizer(Path(model_dir)))
        self.resolve = make_answer_resolver(self.catalog)
        self.max_think = self.settings.max_think_tokens or 256
        self.llm = LLM(model=str(model_dir), dtype="bfloat16", enforce_eager=True, max_model_len=2048,
                       seed=0, enable_prefix_caching=True)

    def prompt(self, history: Sequence[str]) -> str:
        from training.cot.llm_prompt import DEFAULT_PREFILL, build_chat_messages

        return self.render(build_chat_messages(self.catalog, history)) + DEFAULT_PREFILL

    def reason(self, user_ids: Sequence[str], histories: Sequence[Sequence[str]]) -> list[ReasonedUser]:
        from vllm import SamplingParams

        from training.prompts import ANSWER, ANSWER_END, THINK_END

        prompts = [self.prompt(h) for h in histories]
        think = SamplingParams(temperature=0.0, max_tokens=self.max_think, stop=[THINK_END, ANSWER])
        thoughts = [out.outputs[0] for out in self.llm.generate(prompts, think, use_tqdm=False)]
        closed = [f"{p}{t.text}{THINK_END}\n{ANSWER}" for p, t in zip(prompts, thoughts, strict=True)]
        answer = SamplingParams(temperature=0.0, max_tokens=ANSWER_TOKENS, stop=[ANSWER_END])
        answers = [out.outputs[0].text for out in self.llm.generate(closed, answer, use_tqdm=False)]
        rows = []
        for user, history, thought, text in zip(user_ids, histories, thoughts, answers, strict=True):
            item = self.resolve(first_line(text))
            kept = (item,) if item is not None and item not in set(history) else ()
            rows.append(ReasonedUser(user, thought.text.strip(), kept, thought.finish_reason == "stop",
                                     len(thought.token_ids)))
        return rows
