import numpy as np
import pytest

from serving.retrieval.idmap import IdMap


@pytest.mark.timeout(10)
def test_removed_ints_are_never_reused():
    ids = IdMap()
    assert ids.assign(["a", "b", "c"]).tolist() == [0, 1, 2]
    ids.drop(["b"])
    assert ids.assign(["b", "d"]).tolist() == [3, 4]
    assert ids.str_of(1) is None and ids.str_of(3) == "b"
    assert list(ids) == ["a", "c", "b", "d"] and len(ids) == 4


@pytest.mark.timeout(10)
def test_checks_name_the_offending_id():
    ids = IdMap()
    ids.assign(["a"])
    with pytest.raises(ValueError, match="'a'"):
        ids.check_new(["x", "a"])
    with pytest.raises(ValueError, match="'x'"):
        ids.check_new(["x", "x"])
    with pytest.raises(TypeError):
        ids.check_new([3])
    with pytest.raises(KeyError, match="'zz'"):
        ids.ints_of(["a", "zz"])
    assert ids.known_ints(["zz", "a"]) == [0]


@pytest.mark.timeout(10)
def test_json_round_trip_and_corruption():
    ids = IdMap()
    ids.assign(["a", "b", "c"])
    ids.drop(["a"])
    back = IdMap.from_json(ids.to_json())
    assert back.to_json() == ids.to_json()
    assert back.assign(["e"]).tolist() == [3]
    np.testing.assert_array_equal(back.ints_of(["b", "c"]), [1, 2])
    with pytest.raises(ValueError, match="corrupt"):
        IdMap.from_json({"ids": ["a", "b"], "ints": [0, 0], "next_id": 2})
    with pytest.raises(ValueError, match="corrupt"):
        IdMap.from_json({"ids": ["a"], "ints": [5], "next_id": 2})
