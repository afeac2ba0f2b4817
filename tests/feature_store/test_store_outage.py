"""Redis down, hanging or dying mid-pipeline: bounded StoreUnavailable, never a half-written row."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from feature_store.errors import StoreUnavailable
from feature_store.schema import UserFeatures
from feature_store.store import FeatureStore
from tests.feature_store.cutting_proxy import CuttingProxy
from tests.redis_server import RedisServer, free_port, redis_server_path

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(redis_server_path() is None, reason="redis-server is not on PATH")]
FIELDS = ("history", "cot", "answer", "model_version")


def full_row(user: str, at: float) -> UserFeatures:
    return UserFeatures(user, at, {"history": f'["{user}"]', "cot": "x" * 300, "answer": "7", "model_version": "m1"})


def fast_store(url: str, **kwargs) -> FeatureStore:
    settings = {"namespace": "t", "timeout_s": 0.3, "retries": 2, "backoff_s": 0.01} | kwargs
    return FeatureStore(url, **settings)


@pytest.fixture
def own_server():
    """A redis-server of this test alone (tests here kill it)."""
    with RedisServer() as server:
        yield server


def assert_unavailable_quickly(call, url: str, limit_s: float = 3.0) -> StoreUnavailable:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as info:
        call()
    assert time.monotonic() - started < limit_s
    assert url.split("//")[1] in str(info.value)
    return info.value


@pytest.mark.timeout(30)
def test_nothing_listening_raises_store_unavailable():
    url = f"redis://127.0.0.1:{free_port()}/0"
    with fast_store(url) as store:
        error = assert_unavailable_quickly(store.ping, url)
        assert "PING failed after 3 attempts" in str(error)
        assert "write of 1 rows" in str(assert_unavailable_quickly(lambda: store.write([full_row("u", 1.0)]), url))
        assert "read of 1 users" in str(assert_unavailable_quickly(lambda: store.read(["u"]), url))


@pytest.mark.timeout(30)
def test_a_server_that_never_answers_times_out():
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts into its backlog, never replies
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        with fast_store(url, timeout_s=0.2, retries=1) as store:
            error = assert_unavailable_quickly(store.ping, url)
    assert "Timeout" in str(error)


@pytest.mark.timeout(30)
def test_killed_server_fails_then_recovers_after_restart(own_server):
    with fast_store(own_server.url) as store:
        assert store.write([full_row("a", 1.0)]).written == 1
        own_server.kill()
        assert_unavailable_quickly(lambda: store.write([full_row("b", 1.0)]), own_server.url)
        own_server.restart()  # empty again: the Lua script is gone from its cache, the store reloads it
        assert store.write([full_row("b", 1.0)]).written == 1
        assert store.read(["a", "b"], ("answer",)) == [None, {"answer": "7"}]


@pytest.mark.timeout(30)
def test_retries_ride_out_a_short_outage(own_server):
    with fast_store(own_server.url, retries=6, backoff_s=0.05) as store:
        store.ping()
        own_server.kill()
        restarter = threading.Timer(0.4, own_server.start)
        restarter.start()
        assert store.write([full_row("u", 1.0)]).written == 1  # the backoff (0.05 .. 1.6 s) outlasts the outage
        restarter.join()


@pytest.mark.timeout(30)
def test_a_pipeline_cut_mid_way_leaves_whole_rows_or_none(own_server):
    rows = [full_row(f"u{i}", 5.0) for i in range(40)]  # ~18 kB of commands; the proxy passes 8 kB
    proxy = CuttingProxy(own_server.port, budget=8000)
    try:
        with fast_store(proxy.url) as store:
            assert_unavailable_quickly(lambda: store.write(rows), proxy.url)
    finally:
        proxy.close()
    assert proxy.connections == 3  # the first try and 2 retries, each cut at the same byte
    with fast_store(own_server.url) as direct:
        stored = direct.read([r.user_id for r in rows])
        raw = [direct.client.hgetall(f"t:user:{r.user_id}") for r in rows]
        landed = [s for s in stored if s is not None]
        assert 0 < len(landed) < len(rows)  # the cut fell inside the pipeline
        for got in landed:
            assert set(got) == {*FIELDS, "updated_at"} and got["cot"] == "x" * 300
        assert all(not fields or "updated_at" in fields for fields in raw)  # no field without updated_at
        again = direct.write(rows)  # the retry the caller would make: only the missing rows land
        assert (again.written, again.stale) == (len(rows) - len(landed), len(landed))
