"""A/B assignment: salted sha256 buckets, sticky, weighted, and weight changes move only boundary buckets."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from serving.errors import UnknownArm, http_status_of
from serving.experiments import N_BUCKETS, ArmAssigner, bucket_of
from serving.settings import ExperimentSettings

pytestmark = pytest.mark.timeout(30)
USERS = [f"user-{i}" for i in range(10_000)]


def _assigner(*weights: float, names: str = "abc") -> ArmAssigner:
    arms = [{"name": n, "mode": "direct", "bundle": "b", "weight": w} for n, w in zip(names, weights, strict=False)]
    return ArmAssigner.of(ExperimentSettings(name="exp", salt="s1", arms=arms))


def test_bucket_is_the_first_8_bytes_of_sha256_mod_n():
    digest = hashlib.sha256(b"exp:s1:user-7").digest()
    assert bucket_of("exp", "s1", "user-7") == int.from_bytes(digest[:8], "big") % 10_000
    assert bucket_of("exp", "s1", "user-7", n_buckets=7) == int.from_bytes(digest[:8], "big") % 7
    assert bucket_of("exp", "s2", "user-7") != bucket_of("exp", "s1", "user-7")


def test_ranges_follow_weights_in_arm_order():
    assert _assigner(50, 50).bucket_ranges() == {"a": (0, 5000), "b": (5000, 10_000)}
    assert _assigner(1, 1, 1).bucket_ranges() == {"a": (0, 3333), "b": (3333, 6667), "c": (6667, 10_000)}
    assert _assigner(0, 3, 1).bucket_ranges() == {"a": (0, 0), "b": (0, 7500), "c": (7500, 10_000)}


@pytest.mark.parametrize("weights", [(50, 50), (70, 20, 10), (0, 1, 3)])
def test_split_matches_weights_and_is_sticky(weights):
    assigner = _assigner(*weights)
    first = [assigner.assign(u) for u in USERS]
    counts = Counter(first)
    for name, weight in zip("abc", weights, strict=False):
        assert abs(counts[name] / len(USERS) - weight / sum(weights)) <= 0.02
    assert [assigner.assign(u) for u in USERS] == first
    replica = _assigner(*weights)
    assert [replica.assign(u) for u in USERS] == first  # a fresh replica agrees


def test_forced_arm_wins_and_must_exist():
    assigner = _assigner(0, 1)
    assert {assigner.assign(u) for u in USERS[:200]} == {"b"}
    assert assigner.assign("user-1", forced="a") == "a"  # zero weight, still forceable
    assert assigner.assign("user-1", forced="") == "b"
    with pytest.raises(UnknownArm) as err:
        assigner.assign("user-1", forced="zzz")
    status, detail, _ = http_status_of(err.value)
    assert status == 422 and "['a', 'b']" in detail and "'zzz'" in detail
    assert assigner.assign_arm("user-1").name == "b"


def test_50_50_to_60_40_moves_exactly_the_moved_buckets():
    """[5000, 6000) moves from b to a: 10 % of the buckets; every mover goes b -> a; nobody else moves."""
    before, after = _assigner(50, 50), _assigner(60, 40)
    movers = [u for u in USERS if before.assign(u) != after.assign(u)]
    assert {(before.assign(u), after.assign(u)) for u in movers} == {("b", "a")}
    assert abs(len(movers) / len(USERS) - 0.10) <= 0.01
    assert all(5000 <= before.bucket(u) < 6000 for u in movers)
    assert len(movers) == sum(1 for u in USERS if 5000 <= before.bucket(u) < 6000)


def test_arms_whose_range_did_not_change_keep_their_users():
    """40/30/30 -> 40/20/40: a keeps [0, 4000); only b's top 1000 buckets go to c."""
    before, after = _assigner(40, 30, 30), _assigner(40, 20, 40)
    pairs = Counter((before.assign(u), after.assign(u)) for u in USERS)
    assert {p for p in pairs if p[0] != p[1]} == {("b", "c")}
    assert pairs[("a", "a")] == sum(1 for u in USERS if before.assign(u) == "a")
    assert abs(pairs[("b", "c")] / len(USERS) - 0.10) <= 0.01
    assert N_BUCKETS == 10_000
