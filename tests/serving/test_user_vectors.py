"""Redis glue of reasoning mode: guarded vector write-back (no updated_at or TTL change) and the nearline queue."""

from __future__ import annotations

import numpy as np
import pytest

from feature_store.schema import UserFeatures, decode_vector, user_key
from feature_store.store import FeatureStore
from serving.user_vectors import READ_FIELDS, UserVectorStore, nearline_queue_key

pytestmark = [pytest.mark.integration, pytest.mark.timeout(20)]


@pytest.fixture
def vectors(redis_url):
    with FeatureStore(redis_url, namespace="t", ttl_s=3600, timeout_s=0.5, retries=0) as store:
        yield UserVectorStore(store)


def test_a_vector_lands_only_on_the_row_it_was_computed_from(vectors):
    store = vectors.store
    store.write([UserFeatures("u1", 100.0, {"history": '["1"]', "cot": "c"})])
    ttl = store.client.ttl(user_key("t", "u1"))
    vec = np.arange(4, dtype=np.float32)
    assert vectors.write_vectors([("u1", "99.0", vec, "v:a"), ("ghost", "100.0", vec, "v:a")]) == 0
    assert store.client.exists(user_key("t", "ghost")) == 0
    assert vectors.write_vectors([("u1", "100.0", vec, "v:a")]) == 1
    row = vectors.read(["u1", "ghost"])
    assert row[1] is None and set(row[0]) == set(READ_FIELDS) - {"answer"}
    assert row[0]["updated_at"] == "100.0" and row[0]["vector_version"] == "v:a"
    assert decode_vector(row[0]["user_vector"]).tolist() == [0.0, 1.0, 2.0, 3.0]
    assert 0 < store.client.ttl(user_key("t", "u1")) <= ttl
    # the nearline job's newer row still wins: the vector write did not touch updated_at
    assert store.write([UserFeatures("u1", 101.0, {"cot": "newer"})]).written == 1
    assert vectors.write_vectors([]) == 0


def test_the_nearline_queue_is_a_set(vectors):
    vectors.enqueue(["a", "b"])
    vectors.enqueue(["a"])
    vectors.enqueue([])
    assert vectors.queued() == {"a", "b"}
    assert nearline_queue_key("t") == "t:nearline:queue"
