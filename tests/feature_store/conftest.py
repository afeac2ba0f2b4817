"""Feature-store fixtures: a real redis-server per session, an empty database per test, tiny stores."""

from __future__ import annotations

import pytest

from feature_store.store import FeatureStore
from tests import redis_server as servers

redis_server = servers.redis_server  # session fixture: one redis-server for the run
redis_url = servers.redis_url  # function fixture: an emptied database per test


@pytest.fixture
def store(redis_url) -> FeatureStore:
    """A store on an empty database: namespace `t`, 1-hour TTL, fast failure (0.5 s timeout, 1 retry)."""
    with FeatureStore(redis_url, namespace="t", ttl_s=3600, timeout_s=0.5, retries=1, backoff_s=0.01) as s:
        yield s
