"""The HTTP protocol: defaults, limits, typo-proof requests."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from serving.errors import describe_validation_errors
from serving.schemas import (
    ErrorResponse,
    FeedbackEvent,
    ModelInfo,
    ModelsResponse,
    RecommendedItem,
    RecommendRequest,
    RecommendResponse,
)

pytestmark = pytest.mark.timeout(10)


def test_request_defaults():
    req = RecommendRequest(user_id="42")
    assert (req.history, req.k, req.mode, req.exclude_seen, req.explain) == (None, 10, "auto", True, False)


@pytest.mark.parametrize("bad", [
    {"user_id": ""}, {"user_id": "   "}, {"user_id": "u" * 129}, {"user_id": "1", "k": 0},
    {"user_id": "1", "k": True}, {"user_id": "1", "k": 2.5}, {"user_id": "1", "mode": "fast"},
    {"user_id": "1", "history": ["1"] * 1001}, {"user_id": "1", "history": [""]}, {"user_id": "1", "kk": 5},
])
def test_invalid_requests_are_refused(bad):
    with pytest.raises(ValidationError):
        RecommendRequest.model_validate(bad)


def test_a_typo_names_the_field_in_one_line():
    with pytest.raises(ValidationError) as err:
        RecommendRequest.model_validate({"user_id": "1", "exclude_sen": False})
    assert describe_validation_errors(err.value.errors()) == "exclude_sen: Extra inputs are not permitted"


def test_json_request_and_response_round_trip():
    req = RecommendRequest.model_validate_json('{"user_id": "7", "history": ["1", "2"], "k": 3, "mode": "direct"}')
    assert req.history == ["1", "2"] and req.k == 3
    resp = RecommendResponse(items=[RecommendedItem(item_id="3", title="Film 3", score=-1.5)], mode_used="direct",
                             arm="direct", model_version="abc", latency_ms=3.2, request_id="r1")
    again = RecommendResponse.model_validate_json(resp.model_dump_json())
    assert again == resp and again.fallback is None and again.explanation is None


def test_feedback_events():
    event = FeedbackEvent(user_id="1", item_id="5", event="click", request_id="r1", arm="direct")
    assert event.ts is None
    with pytest.raises(ValidationError):
        FeedbackEvent(user_id="1", item_id="5", event="purchase")
    with pytest.raises(ValidationError):
        FeedbackEvent(user_id="1", item_id="5", event="click", extra=1)


def test_models_and_errors():
    info = ModelInfo(experiment="e", arm="a", mode="direct", engine="native", bundle="sft", weight=50)
    assert ModelsResponse(models=[info]).models[0].ready is False
    assert ErrorResponse(detail="k must be ≤ 100").model_dump() == {"detail": "k must be ≤ 100"}
