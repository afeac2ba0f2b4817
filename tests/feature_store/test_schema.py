"""Key layout, history encoding and row validation (no Redis needed)."""

from __future__ import annotations

import base64
import hashlib

import numpy as np
import pytest

from feature_store.errors import StoreError
from feature_store.schema import (
    USER_FIELDS,
    UserFeatures,
    check_name,
    decode_history,
    decode_vector,
    encode_history,
    encode_timestamp,
    encode_vector,
    history_sha,
    job_key,
    schema_key,
    user_key,
)


@pytest.mark.timeout(10)
def test_keys_are_namespaced():
    assert user_key("ns", "42") == "ns:user:42"
    assert job_key("ns", "run-1") == "ns:job:run-1"
    assert schema_key("ns") == "ns:schema"
    assert "updated_at" in USER_FIELDS and len(USER_FIELDS) == 9
    assert {"user_vector", "vector_version"} <= set(USER_FIELDS)


@pytest.mark.timeout(10)
def test_history_round_trip_and_sha():
    items = ["1", "20", "x y"]
    text = encode_history(items)
    assert text == '["1","20","x y"]'
    assert decode_history(text) == items
    assert history_sha(items) == hashlib.sha256(text.encode()).hexdigest()[:16]
    assert history_sha(items) != history_sha(items[:2])


@pytest.mark.timeout(10)
@pytest.mark.parametrize("text", ["not json", '{"a": 1}', "[1, 2]"])
def test_decode_history_refuses_other_json(text):
    with pytest.raises(StoreError):
        decode_history(text)


@pytest.mark.timeout(10)
def test_vector_round_trip_is_float32_little_endian_base64():
    vector = np.array([1.0, -2.5, 3.25], dtype=np.float32)
    text = encode_vector(vector)
    assert base64.b64decode(text) == vector.astype("<f4").tobytes()
    assert decode_vector(text).dtype == np.float32 and decode_vector(text, dim=3).tolist() == [1.0, -2.5, 3.25]
    for bad, dim in (("not base64!", None), (base64.b64encode(b"abc").decode(), None), (text, 4)):
        with pytest.raises(StoreError):
            decode_vector(bad, dim)
    with pytest.raises(StoreError):
        encode_vector(np.zeros((2, 2)))
    assert dict(UserFeatures("7", 1.0, {"user_vector": text, "vector_version": "v:1"}).fields)["user_vector"] == text


@pytest.mark.timeout(10)
def test_timestamp_encoding_is_exact():
    stamp = 1_700_000_000.123456
    assert float(encode_timestamp(stamp)) == stamp
    assert encode_timestamp(5) == "5.0"


@pytest.mark.timeout(10)
def test_user_features_validates_fields():
    row = UserFeatures("7", 1.0, {"cot": "because", "answer": "3"})
    assert dict(row.fields) == {"cot": "because", "answer": "3"}
    with pytest.raises(TypeError):
        row.fields["cot"] = "changed"  # read-only view
    for fields in ({"updated_at": "2"}, {"colour": "red"}, {"cot": 3}):
        with pytest.raises(StoreError):
            UserFeatures("7", 1.0, fields)
    for bad_time in (float("nan"), float("inf"), "1"):
        with pytest.raises(StoreError):
            UserFeatures("7", bad_time, {})
    with pytest.raises(StoreError):
        UserFeatures("", 1.0, {})


@pytest.mark.timeout(10)
@pytest.mark.parametrize("name", ["", "a:b", "a*", "a b", "x?"])
def test_check_name_refuses_glob_and_separators(name):
    with pytest.raises(StoreError):
        check_name("namespace", name)
