"""Serving errors and their HTTP mapping (DESIGN.md §6: a 4xx with a reason, or a 503; never a 500 or a hang).

Business code raises these; the app turns any exception into a response with
`http_status_of(exc) -> (status, detail, headers)` and the body `ErrorResponse {detail}`.

| error                 | status | headers      |
|-----------------------|--------|--------------|
| RequestInvalid        | 422    |              |
| UnknownArm            | 422    |              |
| UnknownUser           | 404    |              |
| EngineOverloaded      | 503    | Retry-After  |
| EngineTimeout         | 503    | Retry-After  |
| DependencyUnavailable | 503    | Retry-After  |
| TimeoutError          | 503    | Retry-After  |
| pydantic errors       | 422    |              |
| anything else         | 500    |              |
"""

from __future__ import annotations

import math
from collections.abc import Sequence

MAX_DETAIL_CHARS = 500


class ServingError(Exception):
    """Base of every error the serving layer maps to an HTTP status; `detail` is safe to show to clients."""

    status: int = 500

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = _clip(detail)

    def headers(self) -> dict[str, str]:
        return {}


class RequestInvalid(ServingError):
    """The request cannot be answered as asked (k above the limit, empty or unknown history, ...) -> 422."""

    status = 422


class UnknownArm(RequestInvalid):
    """A forced arm (header `X-Reasonrec-Arm`) that the experiment does not have -> 422 listing the arms."""

    def __init__(self, arm: str, experiment: str, arms: Sequence[str]):
        super().__init__(f"unknown arm {_clip(arm, 64)!r} for experiment {experiment!r}; arms: {list(arms)}")
        self.arm, self.experiment, self.arms = arm, experiment, list(arms)


class UnknownUser(ServingError):
    """A user with no history anywhere, when the cold-start policy is "404" -> 404."""

    status = 404


class _RetryLater(ServingError):
    """A 503 that tells the client when to come back (`Retry-After`, whole seconds, at least 1)."""

    status = 503

    def __init__(self, detail: str, retry_after_s: float = 1.0):
        super().__init__(detail)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, math.ceil(self.retry_after_s)))}


class EngineOverloaded(_RetryLater):
    """The engine's queue is full: the request was refused at once, not queued -> 503 + Retry-After."""


class EngineTimeout(_RetryLater):
    """The engine did not answer within the request's time budget -> 503 + Retry-After.

    503 rather than 504: the server is its own gateway here, and the client should retry later.
    """


class DependencyUnavailable(_RetryLater):
    """A dependency (redis, faiss, engine, bundle) failed and no fallback applies -> 503 + Retry-After."""

    def __init__(self, dependency: str, detail: str, retry_after_s: float = 1.0):
        super().__init__(f"{dependency} unavailable: {detail}", retry_after_s)
        self.dependency = dependency


def describe_validation_errors(errors: Sequence[dict]) -> str:
    """pydantic/FastAPI `err.errors()` -> one line: "body.k: Input should be greater than or equal to 1; ..."."""
    parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors]
    return _clip("; ".join(parts) or "invalid request")


def http_status_of(exc: BaseException) -> tuple[int, str, dict[str, str]]:
    """Any exception -> (HTTP status, client-safe detail, extra headers). See the table in the module doc."""
    if isinstance(exc, ServingError):
        return exc.status, exc.detail, exc.headers()
    if isinstance(exc, TimeoutError):
        return 503, "request timed out", {"Retry-After": "1"}
    errors = getattr(exc, "errors", None)
    if callable(errors) and type(exc).__name__ in ("ValidationError", "RequestValidationError"):
        return 422, describe_validation_errors(errors()), {}
    return 500, f"internal error ({type(exc).__name__})", {}


def _clip(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
