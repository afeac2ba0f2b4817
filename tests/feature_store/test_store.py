"""FeatureStore against a real redis-server: newer-wins writes, TTL, pipelined reads, scan/stats/purge."""

from __future__ import annotations

import pytest
import redis

from feature_store.errors import StoreError
from feature_store.schema import SCHEMA_VERSION, UserFeatures, schema_key, user_key
from feature_store.store import FeatureStore, WriteResult, redact_url

pytestmark = pytest.mark.integration


def row(user: str, at: float, **fields: str) -> UserFeatures:
    return UserFeatures(user, at, fields)


@pytest.mark.timeout(30)
def test_newer_wins_and_equal_is_a_no_op(store):
    assert store.write([row("u", 10.0, cot="first", answer="1")]) == WriteResult(1, 0)
    assert store.write([row("u", 5.0, cot="older")]) == WriteResult(0, 1)
    assert store.write([row("u", 10.0, cot="same time")]) == WriteResult(0, 1)
    assert store.read(["u"]) == [{"cot": "first", "answer": "1", "updated_at": "10.0"}]
    assert store.write([row("u", 11.5, cot="newer")]) == WriteResult(1, 0)
    assert store.read(["u"], ("cot", "updated_at")) == [{"cot": "newer", "updated_at": "11.5"}]


@pytest.mark.timeout(30)
def test_rewriting_the_same_rows_is_idempotent(store):
    rows = [row(str(u), 100.0, history=f'["{u}"]') for u in range(50)]
    assert store.write(rows) == WriteResult(50, 0)
    assert store.write(rows) == WriteResult(0, 50)
    assert store.count_users() == 50


@pytest.mark.timeout(30)
def test_subset_writes_keep_other_fields(store):
    store.write([row("u", 1.0, history='["1"]', cot="c1")])
    store.write([row("u", 2.0, answer="9")])
    assert store.read(["u"])[0] == {"history": '["1"]', "cot": "c1", "answer": "9", "updated_at": "2.0"}


@pytest.mark.timeout(30)
def test_write_result_adds_up():
    assert WriteResult(2, 1) + WriteResult(3, 4) == WriteResult(5, 5)


@pytest.mark.timeout(30)
def test_ttl_is_set_and_refreshed(store):
    client = store.client
    store.write([row("u", 1.0, cot="a")])
    assert 3590 <= client.ttl(user_key("t", "u")) <= 3600
    client.expire(user_key("t", "u"), 100)
    store.write([row("u", 2.0, cot="b")])
    assert client.ttl(user_key("t", "u")) > 3500


@pytest.mark.timeout(30)
def test_no_ttl_means_no_expiry(redis_url):
    with FeatureStore(redis_url, namespace="t", ttl_s=None) as store:
        store.client.hset(user_key("t", "u"), "updated_at", "0.5")
        store.client.expire(user_key("t", "u"), 100)
        store.write([row("u", 1.0, cot="a")])
        assert store.client.ttl(user_key("t", "u")) == -1
    with pytest.raises(StoreError):
        FeatureStore(redis_url, ttl_s=0)


@pytest.mark.timeout(30)
def test_read_preserves_order_and_marks_missing(store):
    store.write([row("a", 1.0, cot="ca"), row("c", 1.0, answer="3")])
    assert store.read(["c", "missing", "a"], ("cot", "answer")) == [{"answer": "3"}, None, {"cot": "ca"}]
    assert store.read([]) == []
    with pytest.raises(StoreError):
        store.read(["a"], ("colour",))


@pytest.mark.timeout(60)
def test_read_of_1000_users_in_one_call(store):
    rows = [row(f"u{i}", 1.0, answer=str(i)) for i in range(1000)]
    assert store.write(rows).written == 1000
    wanted = [f"u{i}" for i in range(999, -1, -2)] + ["nobody"]
    got = store.read(wanted, ("answer",))
    assert got[:-1] == [{"answer": u[1:]} for u in wanted[:-1]]
    assert got[-1] is None


@pytest.mark.timeout(30)
def test_schema_written_once_and_checked(store):
    assert store.ensure_schema() == SCHEMA_VERSION
    assert store.ensure_schema() == SCHEMA_VERSION
    store.client.set(schema_key("t"), "99")
    with pytest.raises(StoreError, match="schema version 99"):
        store.ensure_schema()


@pytest.mark.timeout(30)
def test_scan_stats_and_purge_stay_in_their_namespace(redis_url, store):
    other = FeatureStore(redis_url, namespace="t2")
    store.ensure_schema()
    store.write([row(f"u{i}", 1.0, cot="c") for i in range(3)] + [row("h", 1.0, history="[]")])
    other.write([row("x", 1.0, cot="c")])
    store.client.hset("t:job:j1", "meta", "{}")
    assert sorted(store.scan_users()) == ["h", "u0", "u1", "u2"]
    stats = store.stats()
    assert (stats["users"], stats["users_with_cot"], stats["jobs"]) == (4, 3, 1)
    assert (stats["schema_version"], stats["ttl_s"], stats["namespace"]) == (1, 3600, "t")
    assert stats["redis_used_memory_bytes"] > 0
    assert store.purge() == 6  # 4 users, the schema key, the job
    assert store.count_users() == 0 and store.client.dbsize() == 1
    assert other.read(["x"])[0]["cot"] == "c"
    other.close()


@pytest.mark.timeout(30)
def test_purge_deletes_in_batches(store):
    store.write([row(str(i), 1.0, answer="a") for i in range(2500)])
    assert store.purge() == 2500
    assert store.client.dbsize() == 0


@pytest.mark.timeout(30)
def test_from_client_and_bad_settings(redis_server, redis_url):
    client = redis.Redis(host="127.0.0.1", port=redis_server.port, decode_responses=True)
    store = FeatureStore.from_client(client, namespace="t", ttl_s=None)
    store.write([row("u", 1.0, cot="c")])
    assert store.read(["u"], ("cot",)) == [{"cot": "c"}]
    assert store.url == f"redis://127.0.0.1:{redis_server.port}/0"
    with pytest.raises(StoreError, match="decode_responses"):
        FeatureStore.from_client(redis.Redis(port=redis_server.port))
    with pytest.raises(StoreError):
        FeatureStore(redis_url, namespace="bad:ns")
    with pytest.raises(StoreError):
        FeatureStore("http://nowhere")
    with pytest.raises(StoreError):
        store.write([{"user_id": "u"}])
    client.close()


@pytest.mark.timeout(10)
def test_redact_url_hides_the_password():
    assert redact_url("redis://user:secret@host:6379/0") == "redis://***@host:6379/0"
    assert redact_url("redis://host:6379/0") == "redis://host:6379/0"
