"""The vLLM direct-mode engine: a policy bundle's trie-constrained beam on `AsyncLLM`, with exact scores.

Same answers as `NativeDirectEngine` (engine/native.py) on the same bundle: the level-by-level beam of
training/rollout/level_beam.py, where each level asks vLLM, per live beam and concurrently, for one greedy
token with the exact log-probs of the beam's trie children (`logprob_token_ids`; DESIGN.md §8: masking
would renormalise, `beam_search` ignores the trie). Score = sum of child log-probs = log P(item | prompt);
seen items are dead prefixes inside the beam; width = max(k, the bundle's beam width). Requests of many
users interleave in vLLM's own scheduler (continuous batching), so no micro-batcher goes in front.

Facts of vLLM 0.32 this follows: `AsyncLLM` always runs its engine core in a child process, and the CPU
platform starts it with `spawn` (the caller's `__main__` needs the `if __name__ == "__main__"` guard);
its output tasks live on the event loop of the first request, so the engine keeps to one loop
(engine/loop.py). The trie logits processor is not needed here: no token is sampled from the trie.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from serving.engine import DirectQuery, ScoredItem
from serving.engine.loop import EngineLoop
from serving.engine.requests import check_direct_bundle, prepare_query, scored_item, warmup_query
from serving.errors import DependencyUnavailable, RequestInvalid
from training.bundle import validate_bundle
from training.catalog import Catalog
from training.data.types import Sample
from training.identifiers.base import IdentifierScheme
from training.identifiers.trie import ItemTrie
from training.inference import load_policy_text, max_history
from training.models.policy_recommender import build_item_trie, encode_prompt
from training.rollout.level_beam import START, best_items, next_beams, open_prefixes
from training.rollout.vllm_backend import ENGINE_ENV, child_params, read_child_logprobs


@dataclass(frozen=True)
class PolicyText:
    """Everything of a policy bundle but its weights: prompts and the item trie. depth: max id length."""

    tokenizer: object
    scheme: IdentifierScheme
    catalog: Catalog
    trie: ItemTrie
    item_ids: dict[str, list[int]]
    vocab: dict[str, int]
    max_prompt_tokens: int
    depth: int

    @classmethod
    def load(cls, root: Path, manifest: dict) -> PolicyText:
        tokenizer, scheme, catalog = load_policy_text(root, manifest)
        trie, item_ids = build_item_trie(scheme, tokenizer)
        depth = scheme.depth or max(len(ids) for ids in item_ids.values())
        return cls(tokenizer, scheme, catalog, trie, item_ids, tokenizer.get_vocab(),
                   int(manifest["generation"]["max_prompt_tokens"]), depth)

    def prompt_ids(self, sample: Sample) -> list[int]:
        return encode_prompt(sample, self.tokenizer, self.scheme, self.item_ids, self.vocab, self.max_prompt_tokens)


def start_async_llm(model_dir: Path, dtype: str, max_model_len: int, device: str = "cpu"):
    """An `AsyncLLM` over the HF folder `model_dir` that reads exact log-probs of listed tokens."""
    for name, value in ENGINE_ENV.items():
        os.environ.setdefault(name, value)
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    args = AsyncEngineArgs(model=str(model_dir), skip_tokenizer_init=True, dtype=dtype, enforce_eager=True,
                           max_model_len=max_model_len, enable_prefix_caching=True, max_logprobs=-1,
                           disable_log_stats=True, gpu_memory_utilization=0.3 if device == "cuda" else 0.9)
    return AsyncLLM.from_engine_args(args)


class VLLMDirectEngine:
    """Direct mode on an `AsyncLLM` (see the module doc and `from_bundle`).

    `await recommend(query)` from an event loop (the first one to call owns the engine; others hop onto
    it); `recommend_batch` / `warm` from sync code. drop_unknown as in `NativeDirectEngine`.
    """

    def __init__(self, llm, text: PolicyText, manifest: dict, beam_width: int, dtype: str = "float32",
                 device: str = "cpu", drop_unknown: bool = False):
        self.llm, self.text, self.manifest = llm, text, manifest
        self.catalog, self.trie = text.catalog, text.trie
        self.beam_width, self.dtype, self.device, self.drop_unknown = beam_width, dtype, device, drop_unknown
        self.keep = max_history(self)
        self.vocab_size = llm.model_config.get_vocab_size()
        self.loop = EngineLoop("vllm-direct")
        try:  # built inside a running loop: AsyncLLM has started its tasks on it already
            self.loop.loop = asyncio.get_running_loop()
        except RuntimeError:
            pass
        self._in_flight = 0
        self._closed = False

    @classmethod
    def from_bundle(cls, bundle_dir: str | Path, beam_width: int | None = None, dtype: str = "float32",
                    expected_version: str | None = None, drop_unknown: bool = False,
                    device: str = "cpu") -> VLLMDirectEngine:
        """Validate a policy bundle (BundleError for another kind or version, before any engine starts),
        then start vLLM on its `policy/` folder (20-45 s on CPU)."""
        root = Path(bundle_dir)
        manifest = validate_bundle(root)
        check_direct_bundle(root, manifest, expected_version)
        text = PolicyText.load(root, manifest)
        llm = start_async_llm(root / "policy", dtype, text.max_prompt_tokens + text.depth, device)
        width = beam_width or int(manifest["generation"]["beam_width"])
        return cls(llm, text, manifest, width, dtype, device, drop_unknown)

    @property
    def bundle_version(self) -> str:
        return str(self.manifest.get("bundle_version", "unknown"))

    @property
    def queue_depth(self) -> int:
        """`recommend` calls in flight (their child requests are queued or running inside vLLM)."""
        return self._in_flight

    def width_for(self, k: int) -> int:
        """Beams per level: max(k, beam_width), capped at the number of items (as TrieGeneratorBase)."""
        return max(1, min(max(k, self.beam_width), len(self.trie)))

    async def recommend(self, query: DirectQuery) -> list[ScoredItem]:
        """Up to k distinct catalog items, best first, with log P; RequestInvalid for a query it cannot answer."""
        prepared = prepare_query(query, self.catalog, self.keep, self.drop_unknown)
        if isinstance(prepared, RequestInvalid):
            raise prepared
        if self._closed:
            raise DependencyUnavailable("vllm", "the engine is shut down")
        return await self.loop.run(self._recommend(query.k, *prepared))

    def recommend_batch(self, queries: Sequence[DirectQuery]) -> list[list[ScoredItem] | RequestInvalid]:
        """Per query: items or RequestInvalid (DirectEngine); all queries run concurrently on the engine loop."""
        return self.loop.run_sync(self._answer_all(list(queries)))

    def describe(self) -> dict:
        return {"engine": "vllm", "bundle": self.manifest.get("name", "policy"),
                "kind": self.manifest.get("kind", "policy"), "bundle_version": self.bundle_version,
                "beam_width": self.beam_width, "n_items": len(self.catalog), "max_history": self.keep,
                "device": self.device, "dtype": self.dtype}

    def warm(self) -> None:
        """One tiny query from sync code (not from the engine loop's own thread: use `warm_async` there)."""
        self.recommend_batch([warmup_query(self.catalog)])

    async def warm_async(self) -> None:
        await self.recommend(warmup_query(self.catalog))

    def shutdown(self) -> None:
        """Stop the vLLM engine (and its child process) and the private loop, if any; idempotent."""
        if not self._closed:
            self._closed = True
            self.llm.shutdown()
            self.loop.close()
            self.llm = None  # AsyncLLM.__del__ shuts down again: let it run now, not at interpreter exit

    async def _answer_all(self, queries: list[DirectQuery]) -> list[list[ScoredItem] | RequestInvalid]:
        return list(await asyncio.gather(*(self._answer(q) for q in queries)))

    async def _answer(self, query: DirectQuery) -> list[ScoredItem] | RequestInvalid:
        try:
            return await self.recommend(query)
        except RequestInvalid as err:
            return err

    async def _recommend(self, k: int, sample: Sample, seen: frozenset[str]) -> list[ScoredItem]:
        self._in_flight += 1
        try:
            pairs = await self._top_items(self.text.prompt_ids(sample), k, seen)
        finally:
            self._in_flight -= 1
        return [scored_item(self.catalog, item, score) for item, score in pairs]

    async def _top_items(self, prompt: list[int], k: int, seen: frozenset[str]) -> list[tuple[str, float]]:
        """The trie beam for one prompt: per level, every open beam's children scored concurrently."""
        width, dead = self.width_for(k), self.trie.dead_prefixes(seen) if seen else frozenset()
        beams = list(START)
        for _ in range(self.text.depth):
            prefixes = open_prefixes(self.trie, beams)
            if not prefixes:
                break
            scored = await asyncio.gather(*(self._child_logprobs(prompt + list(p), self.trie.allowed_next(p))
                                            for p in prefixes))
            beams = next_beams(self.trie, beams, dict(zip(prefixes, scored, strict=True)), dead, width)
        return best_items(self.trie, beams, k)

    async def _child_logprobs(self, tokens: list[int], children: list[int]) -> dict[int, float]:
        """{child: exact log P(child | tokens)} from one single-token vLLM request."""
        from vllm.v1.engine.exceptions import EngineDeadError

        final = None
        try:
            async for out in self.llm.generate({"prompt_token_ids": tokens}, child_params(children, self.vocab_size),
                                               request_id=uuid.uuid4().hex):
                final = out
        except EngineDeadError as err:
            raise DependencyUnavailable("vllm", "the engine process died") from err
        return read_child_logprobs(final.outputs[0], children)
