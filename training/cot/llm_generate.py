"""Text generation for the LLM teacher: chat rendering, HF `generate` and in-process vLLM (DESIGN.md §8).

A generator is `Callable[[Sequence[str]], list[str]]`: rendered prompt texts (chat template applied, any
prefill appended) -> completion texts (special tokens dropped), one per prompt. Both backends tokenize the
prompt with the folder's HF tokenizer and decode with it, so they see the same token ids; vLLM runs with
`skip_tokenizer_init=True` on those ids. Each generator counts `generated_tokens` (for tokens/s).

Sampling (`SamplingSettings`): temperature 0 -> greedy; otherwise temperature + top-p sampling. HF seeds
torch's global generator with `seed` before each call (HF `generate` takes no generator); vLLM uses the
engine seed only (vLLM 0.32 on CPU can crash on per-request seeds, see `training/rollout/vllm_backend.py`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

GenerateFn = Callable[[Sequence[str]], list[str]]
RenderFn = Callable[[list[dict[str, str]]], str]
Backend = Literal["hf", "vllm"]


class SamplingSettings(BaseModel):
    """max_new_tokens: completion budget; temperature 0 = greedy; top_p: nucleus mass when sampling;
    repetition_penalty: CTRL-style penalty on tokens already in prompt or output (1.0 = off; both backends);
    batch_size: prompts per HF `generate` call (vLLM takes a whole `write_many` at once); seed: see module."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    max_new_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    repetition_penalty: float = Field(1.0, gt=0.0)
    batch_size: int = Field(8, ge=1)
    seed: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def load_chat_tokenizer(folder: Path):
    """The folder's HF tokenizer, left-padded (batched generation), with a pad token (eos when it has none)."""
    from transformers import AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if tokenizer.chat_template is None:
        raise ValueError(f"{folder} has no chat template: the LLM teacher needs a chat (instruct) model")
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def make_chat_renderer(tokenizer) -> RenderFn:
    """messages -> the prompt text of the tokenizer's chat template, ending with the assistant turn's start."""

    def render(messages: list[dict[str, str]]) -> str:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    return render


def plain_chat_render(messages: list[dict[str, str]]) -> str:
    """A template-free rendering ("role:\\ncontent" blocks, then "assistant:\\n") for fake generators in tests."""
    return "".join(f"{m['role']}:\n{m['content']}\n" for m in messages) + "assistant:\n"


class HFGenerator:
    """HF `generate` on CPU in fp32, `settings.batch_size` left-padded prompts per call."""

    def __init__(self, folder: Path, tokenizer, settings: SamplingSettings):
        import torch
        from transformers import AutoModelForCausalLM

        self.tokenizer, self.settings, self.generated_tokens = tokenizer, settings, 0
        self.model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()

    def __call__(self, prompts: Sequence[str]) -> list[str]:
        import torch

        torch.manual_seed(self.settings.seed)
        texts: list[str] = []
        for start in range(0, len(prompts), self.settings.batch_size):
            texts += self._batch(list(prompts[start:start + self.settings.batch_size]))
        return texts

    def _batch(self, prompts: list[str]) -> list[str]:
        import torch

        s, tok = self.settings, self.tokenizer
        encoded = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        sampling = {} if s.greedy else {"temperature": s.temperature, "top_p": s.top_p, "top_k": 0}
        with torch.inference_mode():
            out = self.model.generate(**encoded, max_new_tokens=s.max_new_tokens, do_sample=not s.greedy,
                                      repetition_penalty=s.repetition_penalty,
                                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, **sampling)
        new = out[:, encoded["input_ids"].shape[1]:]
        is_eos = new == tok.eos_token_id  # count up to and including the first eos, as vLLM does
        lengths = torch.where(is_eos.any(1), is_eos.int().argmax(1) + 1, new.shape[1])
        self.generated_tokens += int(lengths.sum())
        return tok.batch_decode(new, skip_special_tokens=True)


class VLLMGenerator:
    """In-process `vllm.LLM` (CPU: bf16, eager, `VLLM_ENABLE_V1_MULTIPROCESSING=0`); vllm is imported here only.
    Prefix caching is on: every teacher prompt starts with the same system turn and one-shot example."""

    def __init__(self, folder: Path, tokenizer, settings: SamplingSettings, max_model_len: int = 2048,
                 dtype: str = "bfloat16"):
        from training.rollout.vllm_backend import ENGINE_ENV

        for name, value in ENGINE_ENV.items():
            os.environ.setdefault(name, value)
        from vllm import LLM

        self.tokenizer, self.settings, self.generated_tokens = tokenizer, settings, 0
        self.llm = LLM(model=str(folder), skip_tokenizer_init=True, dtype=dtype, enforce_eager=True,
                       max_model_len=max_model_len, seed=settings.seed, enable_prefix_caching=True)

    def __call__(self, prompts: Sequence[str]) -> list[str]:
        from vllm import SamplingParams

        s, tok = self.settings, self.tokenizer
        params = SamplingParams(temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_new_tokens,
                                repetition_penalty=s.repetition_penalty,
                                stop_token_ids=[tok.eos_token_id], detokenize=False)
        ids = [{"prompt_token_ids": tok(p, add_special_tokens=False)["input_ids"]} for p in prompts]
        outputs = self.llm.generate(ids, params, use_tqdm=False)
        tokens = [list(out.outputs[0].token_ids) for out in outputs]
        self.generated_tokens += sum(len(t) for t in tokens)
        return tok.batch_decode(tokens, skip_special_tokens=True)


def build_generator(folder: Path, tokenizer, backend: Backend, settings: SamplingSettings) -> GenerateFn:
    """The backend's generator over the HF folder `folder`."""
    if backend == "hf":
        return HFGenerator(folder, tokenizer, settings)
    if backend == "vllm":
        return VLLMGenerator(folder, tokenizer, settings)
    raise ValueError(f"unknown backend {backend!r}; choose 'hf' or 'vllm'")
