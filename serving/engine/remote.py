"""A direct engine in its own replicas (`engine.replicas > 0`): both ends of the call, without ray (DESIGN.md §6).

    ingress replica                                 engine replica (serving/deployments.py shells)
    RemoteDirectEngine.recommend(query) --call--> EngineHost.recommend(query) -> EngineReply
                        <- items, or the refusal re-raised as the same ServingError

Why: with the engine inside the ingress replica, a replica that dies takes its in-flight requests with it and Ray
Serve's proxy answers them 500 (and holds new ones until a replacement starts). With the engine behind a handle,
the ingress survives an engine replica's death: the transport error becomes a 503 + Retry-After (`call` is
retried once, which lands on a living replica when there is one), and a request waiting for a replacement gets
the pipeline's engine timeout (503) within the request's budget. The cost is one actor call per direct request.

Refusals travel as values (`EngineReply`), not exceptions, so they keep their kind and Retry-After across the wire.
`call` is whatever delivers a query to an `EngineHost` and maps its transport's failures to `ServingError`s
(`serving.deployments` passes a Ray handle call; tests pass the host's own method).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from serving.engine import DirectEngine, DirectQuery, ScoredItem, is_async_engine, warm_model
from serving.engine.batcher import MicroBatcher, batch_function, batch_wait_ms_for
from serving.engine.requests import check_direct_bundle, warmup_query
from serving.errors import DependencyUnavailable, EngineOverloaded, EngineTimeout, RequestInvalid, ServingError

REFUSALS: dict[str, type[ServingError]] = {"invalid": RequestInvalid, "overloaded": EngineOverloaded,
                                           "timeout": EngineTimeout}


@dataclass(frozen=True)
class EngineReply:
    """What an engine replica sends back: items, or a refusal (kind in REFUSALS, detail, retry_after_s)."""

    items: tuple[ScoredItem, ...] = ()
    refusal: str | None = None
    detail: str = ""
    retry_after_s: float = 1.0


def reply_of(result: list[ScoredItem] | ServingError) -> EngineReply:
    """An engine's result for one query -> its reply; a ServingError outside REFUSALS is sent as "overloaded"."""
    if not isinstance(result, ServingError):
        return EngineReply(tuple(result))
    kind = next((k for k, cls in REFUSALS.items() if type(result) is cls), "overloaded")
    return EngineReply(refusal=kind, detail=result.detail, retry_after_s=getattr(result, "retry_after_s", 1.0))


def result_of(reply: EngineReply) -> list[ScoredItem]:
    """A reply -> its items, or the refusal raised as the error the engine raised (422 or 503 + Retry-After)."""
    if reply.refusal is None:
        return list(reply.items)
    if reply.refusal == "invalid":
        raise RequestInvalid(reply.detail)
    error = REFUSALS.get(reply.refusal, EngineOverloaded)
    raise error(reply.detail, reply.retry_after_s)


class EngineHost:
    """The engine replica's side: one direct engine; a synchronous one gets a micro-batcher (one per event loop,
    as the pipeline's: a batcher's queue belongs to the loop that made it)."""

    def __init__(self, engine: DirectEngine, timeout_s: float = 2.0, **batcher_settings):
        self.engine, self.timeout_s, self.batcher_settings = engine, timeout_s, batcher_settings
        self.asynchronous = is_async_engine(engine)
        self._batcher: tuple[asyncio.AbstractEventLoop, MicroBatcher] | None = None

    @classmethod
    def of(cls, engine: DirectEngine, max_batch_size: int = 8, batch_wait_ms: float = 10.0, max_queue: int = 64,
           retry_after_s: float = 1.0, timeout_s: float = 2.0) -> EngineHost:
        wait_ms = batch_wait_ms_for(engine, batch_wait_ms)
        return cls(engine, timeout_s, max_batch_size=max_batch_size, batch_wait_ms=wait_ms, max_queue=max_queue,
                   retry_after_s=retry_after_s)

    def batcher(self) -> MicroBatcher:
        loop = asyncio.get_running_loop()
        if self._batcher is None or self._batcher[0] is not loop:
            if self._batcher is not None:
                self._batcher[1].close()
            self._batcher = (loop, MicroBatcher(batch_function(self.engine), name="engine", **self.batcher_settings))
        return self._batcher[1]

    async def recommend(self, query: DirectQuery) -> EngineReply:
        try:
            if self.asynchronous:
                return reply_of(await asyncio.wait_for(self.engine.recommend(query), self.timeout_s))
            return reply_of(await self.batcher().submit(query, self.timeout_s))
        except TimeoutError:
            return reply_of(EngineTimeout(f"engine did not answer within {self.timeout_s:g} s"))
        except ServingError as err:
            return reply_of(err)

    async def warm(self) -> None:
        await warm_model(self.engine)

    def describe(self) -> dict:
        return self.engine.describe()

    def close(self) -> None:
        if self._batcher is not None:
            self._batcher[1].close()
        if hasattr(self.engine, "shutdown"):
            self.engine.shutdown()


class RemoteDirectEngine:
    """The ingress's side: a `DirectEngine` with `async recommend` (the pipeline admits and times it like vLLM's).

    The catalog and version come from the bundle on the ingress's disk; `warm_async` checks that the engine
    replicas serve that same version (a bundle changed on disk and not redeployed is an error, not a silent mix).
    """

    def __init__(self, call: Callable[[DirectQuery], Awaitable[EngineReply]],
                 describe: Callable[[], Awaitable[dict]], catalog, manifest: dict):
        self._call, self._describe = call, describe
        self.catalog, self.manifest = catalog, manifest
        self._remote: dict = {}

    @classmethod
    def from_bundle(cls, bundle_dir: str | Path, call, describe, expected_version: str | None = None
                    ) -> RemoteDirectEngine:
        from training.bundle import load_bundle_catalog, read_manifest

        manifest = read_manifest(bundle_dir)
        check_direct_bundle(bundle_dir, manifest, expected_version)
        return cls(call, describe, load_bundle_catalog(bundle_dir), manifest)

    @property
    def bundle_version(self) -> str:
        return str(self.manifest.get("bundle_version", "unknown"))

    async def recommend(self, query: DirectQuery) -> list[ScoredItem]:
        return result_of(await self._call(query))

    async def warm_async(self) -> None:
        self._remote = await self._describe()
        if self._remote.get("bundle_version") != self.bundle_version:
            raise DependencyUnavailable("engine", f"the engine replicas serve bundle_version "
                                        f"{self._remote.get('bundle_version')!r}, this replica's bundle is "
                                        f"{self.bundle_version!r}: redeploy the engine deployment")
        await self.recommend(warmup_query(self.catalog))

    def warm(self) -> None:
        asyncio.run(self.warm_async())

    def describe(self) -> dict:
        return {**self._remote, "bundle_version": self.bundle_version, "placement": "engine deployment"}
