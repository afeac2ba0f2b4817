"""Pytest fixtures over `feature_store.local_redis.RedisServer`: `redis_server` (one server per test session)
and `redis_url` (an empty database per test); a conftest makes them visible with
`from tests import redis_server as servers; redis_server = servers.redis_server`.
"""

from __future__ import annotations

import pytest

from feature_store.local_redis import RedisServer, flush_all, free_port, ping, redis_server_path  # noqa: F401


@pytest.fixture(scope="session")
def redis_server():
    """One redis-server for the test session, stopped at its end; skips when redis-server is not installed."""
    if redis_server_path() is None:
        pytest.skip("redis-server is not on PATH (apt-get install -y redis-server, or `make test` installs it)")
    server = RedisServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def redis_url(redis_server) -> str:
    """URL of the session's server, emptied (FLUSHALL) for this test; restarted if a test stopped it."""
    if not redis_server.running():
        redis_server.start()
    flush_all(redis_server.port)
    return redis_server.url
