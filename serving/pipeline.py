"""The online business logic: recommend, feedback, models, health, readiness (DESIGN.md §1, §6). Plain asyncio:
no FastAPI (serving/app.py is the router), no Ray (serving/deployments.py wraps this class).

Decisions:

- Experiment: the first experiment of the settings is the active one. A user gets an arm of it by the sticky
  salted hash (serving/experiments.py); `forced_arm` (header X-Reasonrec-Arm) picks one by name, unknown -> 422.
- Mode: the arm decides it. Request mode "auto" follows the arm; an explicit mode other than the arm's is honoured
  only when the arm has that capability loaded (a direct engine, or a ReasoningService), else 422 with the reason.
  `build_pipeline_from_settings` gives a reasoning arm the engine of the experiment's first direct arm when
  `reasoning_fallback` is "direct"; a direct arm never gets a reasoning capability.
- Limits: k > max_k -> 422 "k must be ≤ N". A request's history must name items of the answering bundle's
  catalog (422 naming the unknown ids); a stored history (Redis) is filtered to the catalog instead.
- Direct mode: the request's history, else the stored one; one MicroBatcher per engine (per event loop): queue full
  -> 503 + Retry-After; the request's remaining time budget is the batcher's timeout (-> 503). An engine with an
  `async recommend(query)` (vLLM, which batches continuously) is awaited directly instead, refused with 503 when
  `engine.max_queue` calls of this pipeline are already in flight on it.
- Reasoning mode: ReasoningService (cached vector / CoT / fallback); fallback "direct" needs a direct engine on the
  arm, else the arm falls back to "history_only". Its blocking work runs in a worker thread, refused with 503 when
  `reasoning_max_in_flight` reasoning calls of this pipeline are still running (a timed-out call counts until its
  thread ends), so an overload sheds at once instead of piling abandoned work behind the timeout.
- Cold start (no history in the request nor in Redis): popularity (mode_used "popularity", fallback "cold_start")
  or 404, as `cold_start` says. Redis unavailable and no history in the request: popularity with fallback
  "redis_unavailable" whatever `cold_start` says (the user may have a history: a 404 would be wrong, a 5xx is
  not allowed). With a history in the request, Redis being down changes nothing in direct mode and makes
  reasoning mode answer history-only with fallback "redis_unavailable".
- Time: every call is bounded by request_timeout_s (asyncio.wait_for -> TimeoutError -> 503 + Retry-After);
  blocking work (Redis, torch, FAISS, the feedback file) runs in threads, so the timeout always fires.
- model_version: the bundle_version of the model that produced the items (the engine's for direct answers, also
  for a reasoning arm's direct fallback; the Rechead's for reasoning; the arm's own model for popularity).
- Metrics: `recommend` and `feedback` observe themselves (requests by endpoint, mode, arm, status; fallbacks; CoT
  cache hit/miss when Redis was read in reasoning mode; redis/faiss/engine latency; feedback events per arm).
  The app observes the other endpoints and requests refused before they reach the pipeline.
- Feedback: an event's arm is the one it names, else the user's arm in the active experiment.
- `explain` adds the cached CoT to reasoning answers that used it (paths cot, cached_vector); other answers
  carry none. `path` says what produced the items: beam_search, cached_vector, cot, history_only, popularity.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from feature_store.errors import StoreError, StoreUnavailable
from feature_store.schema import decode_history
from feature_store.store import FeatureStore
from serving.engine import DirectEngine, DirectQuery, ScoredItem, is_async_engine, warm_model
from serving.engine.batcher import MicroBatcher, batch_function, batch_wait_ms_for
from serving.errors import (
    DependencyUnavailable,
    EngineOverloaded,
    EngineTimeout,
    RequestInvalid,
    UnknownUser,
    http_status_of,
)
from serving.experiments import ArmAssigner
from serving.feedback import FeedbackLog
from serving.items import known_items, refuse_unknown_items
from serving.metrics import ServingMetrics
from serving.popularity import Popularity
from serving.reasoning import ReasoningResult, ReasoningService
from serving.schemas import (
    FeedbackEvent,
    FeedbackResponse,
    ModelInfo,
    ModelsResponse,
    RecommendedItem,
    RecommendRequest,
    RecommendResponse,
)
from serving.settings import ArmSettings, ServeSettings

ENGINE_MARGIN_S = 0.01  # the engine's timeout fires this much before the request's, so its message wins
CLIENT_CLOSED = 499  # status label of a request cancelled before it finished (client gone, shutdown)


@dataclass
class _Labels:
    """Metric labels of one call, filled in as the call learns them."""

    arm: str = "none"
    mode: str = "none"


@dataclass(frozen=True)
class _Answer:
    items: list[ScoredItem]
    mode_used: str
    path: str
    fallback: str | None
    explanation: str | None
    model_version: str


def status_of(exc: BaseException) -> int:
    """The HTTP status an exception ends in (499 for a cancelled call)."""
    return CLIENT_CLOSED if isinstance(exc, asyncio.CancelledError) else http_status_of(exc)[0]


class RecommendPipeline:
    """engines / reasoning / popularity: arm name -> loaded model; load_errors: arm name -> why it is missing."""

    def __init__(self, settings: ServeSettings, engines: Mapping[str, DirectEngine],
                 reasoning: Mapping[str, ReasoningService], store: FeatureStore, metrics: ServingMetrics,
                 feedback_log: FeedbackLog, popularity: Mapping[str, Popularity],
                 load_errors: Mapping[str, str] | None = None):
        self.settings, self.store, self.metrics, self.feedback_log = settings, store, metrics, feedback_log
        self.experiment = ArmAssigner.of(settings.experiments[0])
        self.engines, self.reasoning, self.popularity = dict(engines), dict(reasoning), dict(popularity)
        self.load_errors = dict(load_errors or {})
        self._batchers: dict[int, tuple[asyncio.AbstractEventLoop, MicroBatcher]] = {}
        self._warm: set[int] = set()
        self._in_flight: dict[int, int] = {}  # async engines: calls admitted and not finished
        self._reasoning_running = 0  # reasoning calls whose worker thread has not finished
        self._labels = engine_labels(self.experiment.arms, self.engines)
        for engine in {id(e): e for e in self.engines.values()}.values():
            if is_async_engine(engine):
                self._track_in_flight(self._labels[id(engine)], id(engine))

    def _track_in_flight(self, label: str, key: int) -> None:
        self.metrics.track_queue_depth(label, lambda: self._in_flight.get(key, 0))

    # ---- recommend ---------------------------------------------------------------------------------------------

    async def recommend(self, request: RecommendRequest, forced_arm: str | None = None) -> RecommendResponse:
        """Top-k for the request's user; ServingError (4xx/503) or TimeoutError (503) when it cannot answer."""
        started, labels, status = time.perf_counter(), _Labels(mode=request.mode), 200
        try:
            return await asyncio.wait_for(self._recommend(request, forced_arm, labels, started),
                                          self.settings.request_timeout_s)
        except BaseException as exc:
            status = status_of(exc)
            raise
        finally:
            self.metrics.observe_request("/v1/recommend", status, time.perf_counter() - started, labels.mode,
                                         labels.arm)

    async def _recommend(self, request: RecommendRequest, forced_arm: str | None, labels: _Labels,
                         started: float) -> RecommendResponse:
        arm = self.experiment.assign_arm(request.user_id, forced_arm)
        labels.arm = arm.name
        if request.k > self.settings.max_k:
            raise RequestInvalid(f"k must be ≤ {self.settings.max_k}, got {request.k}")
        mode = labels.mode = self._mode_for(arm, request.mode)
        deadline = started + self.settings.request_timeout_s
        if mode == "direct":
            answer = await self._direct(arm, request, deadline)
        else:
            answer = await self._reasoning(arm, request, deadline)
        labels.mode = answer.mode_used
        if answer.fallback:
            self.metrics.observe_fallback(arm.name, answer.fallback)
        return RecommendResponse(
            items=[RecommendedItem(item_id=i.item_id, title=i.title, score=i.score) for i in answer.items],
            mode_used=answer.mode_used, arm=arm.name, model_version=answer.model_version, fallback=answer.fallback,
            path=answer.path, explanation=answer.explanation, request_id=uuid.uuid4().hex,
            latency_ms=(time.perf_counter() - started) * 1000)

    def _mode_for(self, arm: ArmSettings, asked: str) -> str:
        """The mode that answers: the arm's for "auto" or the same mode; another one only if the arm has it."""
        if asked in ("auto", arm.mode):
            return arm.mode
        if asked == "direct" and arm.name in self.engines or asked == "reasoning" and arm.name in self.reasoning:
            return asked
        raise RequestInvalid(f"arm {arm.name!r} serves {arm.mode} mode and has no {asked} model; send mode "
                             f"'auto' or {arm.mode!r}")

    async def _direct(self, arm: ArmSettings, request: RecommendRequest, deadline: float) -> _Answer:
        engine = self._engine(arm)
        catalog = getattr(engine, "catalog", None)
        history: Sequence[str] | None = request.history
        if history is not None and catalog is not None:
            refuse_unknown_items(catalog, history)
        if history is None:
            history = await self._stored_history(request.user_id, catalog)
            if history is None:
                return self._popular(arm, request.k, "redis_unavailable")
        if not history:
            return self._cold_start(arm, request.k)
        query = DirectQuery(tuple(history), request.k, request.exclude_seen, request.user_id)
        items = await self._engine_answer(engine, query, deadline)
        return _Answer(items, "direct", "beam_search", None, None, version_of(engine))

    async def _reasoning(self, arm: ArmSettings, request: RecommendRequest, deadline: float) -> _Answer:
        service = self._service(arm)
        fallback = self.settings.reasoning_fallback if arm.name in self.engines else "history_only"
        result = await self._reasoning_answer(service, request, fallback)
        self._observe_reasoning(result)
        if result.path == "direct":
            return await self._direct_fallback(arm, request, result, deadline)
        if result.path == "cold_start":
            if result.fallback == "redis_unavailable":
                return self._popular(arm, request.k, "redis_unavailable")
            return self._cold_start(arm, request.k)
        return _Answer(result.items, "reasoning", result.path, result.fallback, result.explanation,
                       result.model_version)

    async def _reasoning_answer(self, service: ReasoningService, request: RecommendRequest,
                                fallback: str) -> ReasoningResult:
        """`service.recommend_blocking` in a worker thread; refused at once (503 + Retry-After) while
        `reasoning_max_in_flight` reasoning calls are running. A call abandoned at its timeout keeps running in its
        thread, so it counts until the thread is done: under overload the backlog cannot grow behind requests
        already answered 503, and the accepted ones keep a bounded wait."""
        loop, limit = asyncio.get_running_loop(), self.settings.reasoning_max_in_flight
        if self._reasoning_running >= limit:
            raise EngineOverloaded(f"reasoning overloaded: {self._reasoning_running} requests running",
                                   self.settings.engine.retry_after_s)
        self._reasoning_running += 1

        def run() -> ReasoningResult:
            try:
                return service.recommend_blocking(request.user_id, request.history, request.k, request.exclude_seen,
                                                  fallback, request.explain)
            finally:
                loop.call_soon_threadsafe(self._reasoning_finished)

        try:
            future = loop.run_in_executor(None, run)
        except RuntimeError:  # the executor refused the call (shutting down): it will never run
            self._reasoning_finished()
            raise
        return await future

    def _reasoning_finished(self) -> None:
        self._reasoning_running -= 1

    async def _direct_fallback(self, arm: ArmSettings, request: RecommendRequest, result: ReasoningResult,
                               deadline: float) -> _Answer:
        """The arm's direct engine on the history the reasoning service resolved (fallback "no_cached_cot")."""
        engine = self.engines[arm.name]
        catalog = getattr(engine, "catalog", None)
        history = known_items(catalog, result.history) if catalog is not None else result.history
        if not history:
            return self._cold_start(arm, request.k)
        query = DirectQuery(tuple(history), request.k, request.exclude_seen, request.user_id)
        items = await self._engine_answer(engine, query, deadline)
        return _Answer(items, "direct", "beam_search", result.fallback, None, version_of(engine))

    def _observe_reasoning(self, result: ReasoningResult) -> None:
        for dependency, seconds in result.timings.items():
            self.metrics.observe_dependency(dependency, seconds)
        if result.cot_hit is not None:
            self.metrics.observe_cot_lookup(result.cot_hit)

    async def _stored_history(self, user_id: str, catalog) -> tuple[str, ...] | None:
        """The user's stored history (filtered to `catalog`), () when none, None when Redis is unavailable."""
        start = time.perf_counter()
        try:
            row = (await asyncio.to_thread(self.store.read, [user_id], ("history",)))[0]
        except StoreUnavailable:
            return None
        finally:
            self.metrics.observe_dependency("redis", time.perf_counter() - start)
        try:
            history = tuple(decode_history(row["history"])) if row and row.get("history") else ()
        except StoreError:
            return ()
        return known_items(catalog, history) if catalog is not None else history

    async def _engine_answer(self, engine: DirectEngine, query: DirectQuery, deadline: float) -> list[ScoredItem]:
        remaining = deadline - time.perf_counter() - ENGINE_MARGIN_S
        if remaining <= 0:
            raise TimeoutError("no time left for the engine")
        with self.metrics.time_dependency("engine"):
            if is_async_engine(engine):
                return await self._async_engine_answer(engine, query, remaining)
            return await self._batcher(engine).submit(query, remaining)

    async def _async_engine_answer(self, engine, query: DirectQuery, timeout_s: float) -> list[ScoredItem]:
        """An engine that batches by itself (vLLM): no batcher; refused when max_queue calls are in flight."""
        s, key = self.settings.engine, id(engine)
        depth, label = self._in_flight.get(key, 0), self._labels[key]
        if depth >= s.max_queue:
            raise EngineOverloaded(f"engine {label} overloaded: {depth} requests in flight", s.retry_after_s)
        self._in_flight[key] = depth + 1
        try:
            return await asyncio.wait_for(engine.recommend(query), timeout_s)
        except TimeoutError:
            raise EngineTimeout(f"engine {label} did not answer within {timeout_s:g} s", s.retry_after_s) from None
        finally:
            self._in_flight[key] -= 1

    def _cold_start(self, arm: ArmSettings, k: int) -> _Answer:
        if self.settings.cold_start == "404":
            raise UnknownUser("no history for this user: send one in `history` (this server answers cold-start "
                              "users with 404)")
        return self._popular(arm, k, "cold_start")

    def _popular(self, arm: ArmSettings, k: int, reason: str) -> _Answer:
        popularity = self.popularity.get(arm.name)
        if popularity is None:
            raise DependencyUnavailable("popularity", f"arm {arm.name!r} has no catalog loaded")
        return _Answer(popularity.top(k), "popularity", "popularity", reason, None, self._arm_version(arm))

    # ---- loaded models -----------------------------------------------------------------------------------------

    def _engine(self, arm: ArmSettings) -> DirectEngine:
        engine = self.engines.get(arm.name)
        if engine is None:
            raise DependencyUnavailable("engine", self._missing(arm))
        return engine

    def _service(self, arm: ArmSettings) -> ReasoningService:
        service = self.reasoning.get(arm.name)
        if service is None:
            raise DependencyUnavailable("reasoning", self._missing(arm))
        return service

    def _missing(self, arm: ArmSettings) -> str:
        return f"arm {arm.name!r}: bundle {arm.bundle!r} not loaded ({self.load_errors.get(arm.name, 'no model')})"

    def _own_model(self, arm: ArmSettings) -> DirectEngine | ReasoningService | None:
        return (self.engines if arm.mode == "direct" else self.reasoning).get(arm.name)

    def _arm_version(self, arm: ArmSettings) -> str:
        model = self._own_model(arm)
        return version_of(model) if model is not None else arm.bundle_version or "unknown"

    def _batcher(self, engine: DirectEngine) -> MicroBatcher:
        """The engine's batcher on the running loop (made on first use; remade if the loop changed)."""
        loop = asyncio.get_running_loop()
        entry = self._batchers.get(id(engine))
        if entry is not None and entry[0] is loop:
            return entry[1]
        if entry is not None:
            entry[1].close()
        s, label = self.settings.engine, self._labels[id(engine)]
        batcher = MicroBatcher(batch_function(engine), s.max_batch_size, batch_wait_ms_for(engine, s.batch_wait_ms),
                               s.max_queue, s.retry_after_s, name=f"engine {label}",
                               on_batch=lambda size: self.metrics.observe_batch(label, size))
        self.metrics.track_queue_depth(label, lambda: batcher.queue_depth)
        self._batchers[id(engine)] = (loop, batcher)
        return batcher

    def warm(self) -> None:
        """Warm every loaded engine and reasoning service once (blocking; call it outside any event loop's
        thread, or use `warm_async`); readiness waits for it."""
        for model in self._models():
            model.warm()
            self._warm.add(id(model))

    async def warm_async(self) -> None:
        """`warm` from a running event loop: `warm_async()` where a model has it, else `warm()` in a thread."""
        for model in self._models():
            await warm_model(model)
            self._warm.add(id(model))

    def _models(self) -> list:
        """Every loaded engine and reasoning service, each once."""
        return list({id(m): m for m in [*self.engines.values(), *self.reasoning.values()]}.values())

    # ---- feedback, models, health ------------------------------------------------------------------------------

    async def feedback(self, events: FeedbackEvent | Sequence[FeedbackEvent]) -> FeedbackResponse:
        """Log exposure/click events (idempotent by request_id, item_id, event); count new ones per arm."""
        started, status = time.perf_counter(), 200
        events = [events] if isinstance(events, FeedbackEvent) else list(events)
        try:
            now = time.time()
            rows = [self._feedback_row(event, now) for event in events]
            flags = await asyncio.wait_for(asyncio.to_thread(self.feedback_log.append, rows),
                                           self.settings.request_timeout_s)
            for row, new in zip(rows, flags, strict=True):
                if new:
                    self.metrics.observe_feedback(row["arm"], row["event"])
            return FeedbackResponse(accepted=sum(flags), duplicates=len(flags) - sum(flags))
        except BaseException as exc:
            status = status_of(exc)
            raise
        finally:
            self.metrics.observe_request("/v1/feedback", status, time.perf_counter() - started)

    def _feedback_row(self, event: FeedbackEvent, now: float) -> dict:
        arm = event.arm or self.experiment.assign(event.user_id)
        return {"ts": event.ts if event.ts is not None else now, "received_at": now, "user_id": event.user_id,
                "item_id": event.item_id, "event": event.event, "request_id": event.request_id, "arm": arm}

    def models(self) -> ModelsResponse:
        """Every arm of the active experiment: what it runs, its bundle version, whether it is ready."""
        return ModelsResponse(models=[self._model_info(arm) for arm in self.experiment.arms])

    def _model_info(self, arm: ArmSettings) -> ModelInfo:
        model = self._own_model(arm)
        details = model.describe() if model is not None else {"error": self._missing(arm)}
        if arm.mode == "reasoning" and model is not None:
            details["direct_fallback"] = arm.name in self.engines
        return ModelInfo(experiment=self.experiment.name, arm=arm.name, mode=arm.mode, engine=arm.engine,
                         bundle=arm.bundle, bundle_version=self._arm_version(arm), weight=arm.weight,
                         ready=model is not None and id(model) in self._warm, details=details)

    def health(self) -> dict:
        """Liveness: the process answers."""
        return {"status": "ok"}

    async def ready(self) -> tuple[bool, list[str]]:
        """(ready, reasons): every arm's model loaded and warm, and Redis answering PING."""
        reasons = []
        for arm in self.experiment.arms:
            model = self._own_model(arm)
            if model is None:
                reasons.append(f"{self._missing(arm)}")
            elif id(model) not in self._warm:
                reasons.append(f"arm {arm.name!r}: engine not warm")
        try:
            await asyncio.wait_for(asyncio.to_thread(self.store.ping), self.settings.request_timeout_s)
        except (StoreUnavailable, TimeoutError) as err:
            reasons.append(f"redis unreachable: {str(err) or 'PING timed out'}")
        return not reasons, reasons

    def loaded_models(self) -> list:
        """Every loaded engine and reasoning service, each once (what `close(keep=...)` of a replaced pipeline
        must leave running when this pipeline took some of them over)."""
        return self._models()

    def close(self, keep: Sequence[object] = ()) -> None:
        """Stop the batchers and the engines that can be shut down (except those in `keep`, now serving in another
        pipeline), close the feedback log and the store."""
        for _, batcher in self._batchers.values():
            batcher.close()
        self._batchers.clear()
        kept = {id(model) for model in keep}
        for model in self._models():
            if hasattr(model, "shutdown") and id(model) not in kept:
                model.shutdown()
        self.feedback_log.close()
        self.store.close()


def engine_labels(arms: Sequence[ArmSettings], engines: Mapping[str, object]) -> dict[int, str]:
    """id(engine) -> the bundle key it serves: that of the first direct arm using it (else of any arm using it);
    names the engine in queue metrics and overload messages."""
    labels: dict[int, str] = {}
    for arm in sorted(arms, key=lambda a: a.mode != "direct"):
        if arm.name in engines:
            labels.setdefault(id(engines[arm.name]), arm.bundle)
    return labels


def version_of(model: object) -> str:
    """A loaded model's bundle version (`bundle_version` attribute or `describe()`), "unknown" when it has none."""
    version = getattr(model, "bundle_version", None)
    if version is None and hasattr(model, "describe"):
        version = model.describe().get("bundle_version")
    return str(version or "unknown")
