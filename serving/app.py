"""The HTTP router of the online app (FastAPI): thin, all logic is in `RecommendPipeline` (DESIGN.md §6).

    POST /v1/recommend   RecommendRequest -> RecommendResponse; header X-Reasonrec-Arm forces an arm
    POST /v1/feedback    FeedbackEvent, or a list of them -> FeedbackResponse
    GET  /v1/models      ModelsResponse
    GET  /healthz        liveness: {"status": "ok"}
    GET  /readyz         {"ready": true, "reasons": []}, or 503 with the reasons (bundle not loaded, engine not
                         warm, Redis unreachable)
    GET  /metrics        Prometheus text
    GET  /docs           OpenAPI UI (/openapi.json)
    GET  /ui             the page: a user's history, both modes side by side, per-arm panel (serving/ui/)

Errors always carry `{"detail": "<one line>"}`: a body over `max_body_bytes` -> 413 (serving/body_limit.py);
request validation errors and malformed JSON -> 422 (a pydantic
error raised inside the pipeline is a bug, not the client's fault, so it is a 500); ServingError -> its
status and headers (404, 422, 503 + Retry-After); TimeoutError (the request's time budget, enforced by the
pipeline) -> 503 + Retry-After. Anything else is a bug and ends as a 500 (tests assert no error path gets there).
Requests refused before they reach the pipeline (validation) and the endpoints other than recommend and feedback
are counted in the metrics here; recommend and feedback count themselves in the pipeline.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated

from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from serving.body_limit import BodySizeLimit
from serving.errors import ServingError, describe_validation_errors, http_status_of
from serving.experiments import FORCE_ARM_HEADER
from serving.loading import ENGINE_FACTORIES, build_pipeline_from_settings
from serving.pipeline import RecommendPipeline
from serving.schemas import (
    ErrorResponse,
    FeedbackEvent,
    FeedbackResponse,
    ModelsResponse,
    RecommendRequest,
    RecommendResponse,
)
from serving.ui.routes import add_ui

__all__ = ["ENGINE_FACTORIES", "build_app", "build_pipeline_from_settings"]
MAX_FEEDBACK_EVENTS = 1000
ERRORS = {status: {"model": ErrorResponse} for status in (404, 422, 503)}
log = logging.getLogger(__name__)
FeedbackBody = FeedbackEvent | Annotated[list[FeedbackEvent], Field(min_length=1, max_length=MAX_FEEDBACK_EVENTS)]


def build_app(pipeline: RecommendPipeline) -> FastAPI:
    """The FastAPI ingress over a built pipeline (see `build_pipeline_from_settings`)."""
    app = FastAPI(title="reasonrec", version="0.1.0", description="Reasoning-based recommendation: direct and "
                  "reasoning modes, A/B arms, feedback log.")
    app.state.pipeline = pipeline
    _add_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=pipeline.settings.max_body_bytes)
    app.add_middleware(ObserveRequests, metrics=pipeline.metrics)  # added last = outermost: it counts the 413s too
    _add_routes(app, pipeline)
    if pipeline.settings.ui.enabled:
        add_ui(app, pipeline)
    return app


def _add_routes(app: FastAPI, pipeline: RecommendPipeline) -> None:
    @app.post("/v1/recommend", response_model=RecommendResponse, responses=ERRORS)
    async def recommend(body: RecommendRequest, request: Request,
                        arm: Annotated[str | None, Header(alias=FORCE_ARM_HEADER, max_length=64)] = None
                        ) -> RecommendResponse:
        """Top-k items for a user, by the user's experiment arm (or the one the header forces)."""
        request.state.observed = True  # the pipeline counts this request, whatever happens next
        return await pipeline.recommend(body, arm)

    @app.post("/v1/feedback", response_model=FeedbackResponse, responses=ERRORS)
    async def feedback(body: FeedbackBody, request: Request) -> FeedbackResponse:
        """Log exposures and clicks; a retried event (same request_id, item_id, event) is logged once."""
        request.state.observed = True
        return await pipeline.feedback(body)

    @app.get("/v1/models", response_model=ModelsResponse)
    async def models() -> ModelsResponse:
        """The arms of the active experiment and what each serves."""
        return pipeline.models()

    @app.get("/healthz")
    async def healthz() -> dict:
        return pipeline.health()

    @app.get("/readyz", responses={503: {"description": "not ready; `reasons` says why"}})
    async def readyz() -> JSONResponse:
        ready, reasons = await pipeline.ready()
        body = {"ready": ready, "reasons": reasons}
        if not ready:
            body["detail"] = "; ".join(reasons)
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        payload, content_type = pipeline.metrics.render()
        return Response(payload, media_type=content_type)


def _add_error_handlers(app: FastAPI) -> None:
    async def validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": describe_validation_errors(exc.errors())}, status_code=422)

    async def known(request: Request, exc: Exception) -> JSONResponse:
        status, detail, headers = http_status_of(exc)
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__})"}, status_code=500)

    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(ServingError, known)
    app.add_exception_handler(TimeoutError, known)
    app.add_exception_handler(Exception, bug)


class ObserveRequests:
    """Counts and times the HTTP requests the pipeline does not count itself (refused by validation, /healthz, ...).
    Plain ASGI rather than `@app.middleware("http")`, whose BaseHTTPMiddleware adds a task and a body stream to
    every request. The routes mark a request as counted with `request.state.observed` (Starlette keeps
    `request.state` in `scope["state"]`)."""

    def __init__(self, app, metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def send_noting_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            if not scope.get("state", {}).get("observed", False):
                self.metrics.observe_request(scope["path"], status, time.perf_counter() - started)
