"""Direct-mode engines: a request's history -> top-k catalog items with exact scores (DESIGN.md §1).

`DirectEngine` is the contract the pipeline calls (through `MicroBatcher`, engine/batcher.py):
`NativeDirectEngine` (engine/native.py, in-process trie beam search) and `VLLMDirectEngine`
(engine/vllm_engine.py, vLLM `AsyncLLM`; also `await recommend(query)`, no batcher needed) implement it.
This module imports no torch, so the app can type against it cheaply.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from serving.errors import RequestInvalid


@dataclass(frozen=True)
class DirectQuery:
    """One direct-mode request. history: raw item ids, oldest first; exclude_seen: never return them."""

    history: tuple[str, ...]
    k: int
    exclude_seen: bool = True
    user_id: str = "anonymous"


@dataclass(frozen=True)
class ScoredItem:
    """item_id: a catalog item; title: its catalog title; score: log P(item | prompt), higher is better."""

    item_id: str
    title: str
    score: float


@runtime_checkable
class DirectEngine(Protocol):
    def recommend_batch(self, queries: Sequence[DirectQuery]) -> list[list[ScoredItem] | RequestInvalid]:
        """Per query, in order: up to k distinct catalog items, best first, or a RequestInvalid for a query
        that cannot be answered (empty or unknown history); other queries of the batch are unaffected."""
        ...

    def describe(self) -> dict:
        """JSON-ready facts for /v1/models: engine, bundle name and version, beam width, catalog size, device."""
        ...

    def warm(self) -> None:
        """Run one tiny query so the first real request pays no lazy start-up cost."""
        ...


def is_async_engine(engine: object) -> bool:
    """True for an engine with `async recommend(query)` (it batches by itself, e.g. vLLM's continuous batching)."""
    return inspect.iscoroutinefunction(getattr(engine, "recommend", None))


async def warm_model(model: object) -> None:
    """Warm a loaded engine or reasoning service from a running event loop: its `warm_async()` where it has one,
    else its blocking `warm()` in a thread."""
    if hasattr(model, "warm_async"):
        await model.warm_async()
    else:
        await asyncio.to_thread(model.warm)
