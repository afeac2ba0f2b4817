"""The HTTP protocol of the online app (pydantic v2): requests, responses, errors (DESIGN.md §6).

Endpoints: `POST /v1/recommend` (RecommendRequest -> RecommendResponse), `POST /v1/feedback`
(FeedbackEvent -> FeedbackResponse), `GET /v1/models` (ModelsResponse); errors carry ErrorResponse.
Requests forbid unknown fields, so a typo is a 422, not a silent default. The upper limit of `k`
comes from the serve settings (`max_k`) and is checked by the app ("k must be ≤ N").
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

MAX_HISTORY = 1000


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be blank")
    return text


UserId = Annotated[str, StringConstraints(min_length=1, max_length=128), AfterValidator(_not_blank)]
ItemId = Annotated[str, StringConstraints(min_length=1, max_length=128), AfterValidator(_not_blank)]
Mode = Literal["direct", "reasoning", "auto"]
# What answered: a mode, or popularity for a cold-start user (then `fallback` says why).
ModeUsed = Literal["direct", "reasoning", "popularity"]
AnswerPath = Literal["beam_search", "cached_vector", "cot", "history_only", "popularity"]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecommendRequest(Request):
    """user_id: the caller's user; history: item ids oldest first (None = the stored history of the user);
    mode: direct (beam search), reasoning (cached CoT + Rechead + FAISS), auto (the user's experiment arm);
    exclude_seen: never return history items; explain: add the cached chain of thought when there is one."""

    user_id: UserId
    history: list[ItemId] | None = Field(None, max_length=MAX_HISTORY)
    k: int = Field(10, ge=1, strict=True)
    mode: Mode = "auto"
    exclude_seen: bool = True
    explain: bool = False


class RecommendedItem(BaseModel):
    """score: higher is better; log P(item | prompt) in direct mode, the Rechead dot product in reasoning mode."""

    item_id: str
    title: str
    score: float


class RecommendResponse(BaseModel):
    """items: best first; arm: the experiment arm that answered; model_version: its bundle version;
    fallback: a short code when a fallback path answered ("no_cached_cot", "redis_unavailable", "cold_start");
    path: what produced the items: "beam_search" (direct), "cached_vector" / "cot" / "history_only" (reasoning:
    a user vector cached in Redis, one computed from the cached CoT, one from the history alone), "popularity";
    latency_ms: server-side time; request_id: echo it in feedback events."""

    items: list[RecommendedItem]
    mode_used: ModeUsed
    arm: str
    model_version: str
    fallback: str | None = None
    path: AnswerPath | None = None
    explanation: str | None = None
    latency_ms: float = Field(ge=0)
    request_id: str


class FeedbackEvent(Request):
    """An exposure (the item was shown) or a click; appended to the feedback log, counted per arm.

    ts: client time in unix seconds (None = the server's receive time)."""

    user_id: UserId
    item_id: ItemId
    event: Literal["exposure", "click"]
    request_id: str | None = Field(None, max_length=128)
    arm: str | None = Field(None, max_length=64)
    ts: float | None = None


class FeedbackResponse(BaseModel):
    """accepted: events newly logged; duplicates: events already logged (same request_id, item_id and event),
    acknowledged and not logged again, so a client may retry a feedback call safely."""

    accepted: int = Field(ge=0)
    duplicates: int = Field(0, ge=0)


class ModelInfo(BaseModel):
    """One experiment arm as served: what it runs and whether it is loaded."""

    experiment: str
    arm: str
    mode: Literal["direct", "reasoning"]
    engine: Literal["native", "vllm"]
    bundle: str
    bundle_version: str | None = None
    weight: float
    ready: bool = False
    details: dict = Field(default_factory=dict)


class ModelsResponse(BaseModel):
    models: list[ModelInfo]


class ErrorResponse(BaseModel):
    detail: str
