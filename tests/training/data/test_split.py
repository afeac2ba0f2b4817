"""Splits as DESIGN.md §3 defines them, checked on hand-made datasets."""

from __future__ import annotations

import pytest

from training.data.split import build_split, filter_k_core, sort_interactions
from training.data.types import Interaction, ItemInfo, RawDataset, Sample, UserProfile


def _dataset(rows: list[tuple[str, str, int]], users: dict[str, UserProfile] | None = None) -> RawDataset:
    interactions = [Interaction(u, i, t) for u, i, t in rows]
    items = {i: ItemInfo(i, f"Film {i}") for _, i, _ in rows}
    return RawDataset("hand", interactions, items, users or {})


def _ids(samples: list[Sample]) -> list[str]:
    return [s.sample_id for s in samples]


# 10 interactions, given shuffled; sorted they are (g = global position):
#   g0 u1  i1  t100   g1 u2  i1  t100   (tie: user 1 before user 2)
#   g2 u1  i2  t200   g3 u10 i3  t200   (tie: user 1 before user 10, numerically)
#   g4 u2  i9  t300   g5 u2  i10 t300   (tie inside one user: item 9 before item 10)
#   g6 u1  i3  t400   g7 u10 i1  t500   -> train = g0..g7 (8 of 10)
#   g8 u1  i9  t600                     -> valid (1 of 10)
#   g9 u2  i3  t700                     -> test  (1 of 10)
TEN = [
    ("2", "3", 700), ("10", "1", 500), ("2", "10", 300), ("1", "9", 600), ("10", "3", 200),
    ("1", "3", 400), ("2", "9", 300), ("2", "1", 100), ("1", "2", 200), ("1", "1", 100),
]


def test_sort_is_by_time_then_numeric_user_then_numeric_item():
    xs = [Interaction("10", "1", 5), Interaction("9", "10", 5), Interaction("9", "9", 5),
          Interaction("a", "1", 5), Interaction("1", "1", 7), Interaction("100", "2", 1)]
    got = [(x.user_id, x.item_id, x.timestamp) for x in sort_interactions(xs)]
    assert got == [("100", "2", 1),                 # earliest timestamp first, whatever its ids
                   ("9", "9", 5), ("9", "10", 5),   # "9" < "10" numerically, for users and items
                   ("10", "1", 5), ("a", "1", 5),   # numeric ids before non-numeric ones
                   ("1", "1", 7)]


def test_sort_is_stable_for_identical_keys():
    first, second = Interaction("1", "1", 3), Interaction("1", "1", 3)
    out = sort_interactions([Interaction("2", "1", 1), first, second])
    assert out[1] is first and out[2] is second


def test_temporal_split_parts_sample_ids_and_histories():
    split = build_split(_dataset(TEN), "temporal")
    assert split.protocol == "temporal"
    # g0, g1, g3 are each user's first interaction: empty history, dropped from train
    assert _ids(split.train) == ["1:1", "2:1", "2:2", "1:2", "10:1"]
    assert [(s.history, s.target) for s in split.train] == [
        (("1",), "2"), (("1",), "9"), (("1", "9"), "10"), (("1", "2"), "3"), (("3",), "1")]
    assert [(s.sample_id, s.history, s.target) for s in split.valid] == [("1:3", ("1", "2", "3"), "9")]
    assert [(s.sample_id, s.history, s.target) for s in split.test] == [("2:3", ("1", "9", "10"), "3")]
    assert split.dropped_empty_history == {"train": 3, "valid": 0, "test": 0}
    assert split.sequences == {"1": ["1", "2", "3", "9"], "2": ["1", "9", "10", "3"], "10": ["3", "1"]}
    assert split.train_sequences == {"1": ["1", "2", "3"], "2": ["1", "9", "10"], "10": ["3", "1"]}


def test_temporal_split_caps_history_and_counts_drops_in_every_part():
    # u1 watches items 1..8 (t1..t8) = train; u2's only item is valid, u3's only item is test
    rows = [("1", str(i), i) for i in range(1, 9)] + [("2", "1", 9), ("3", "2", 10)]
    split = build_split(_dataset(rows), "temporal", max_history=3)
    assert _ids(split.train) == [f"1:{p}" for p in range(1, 8)]
    assert split.train[-1].history == ("5", "6", "7")  # the last 3 before item 8, oldest first
    assert split.train[1].history == ("1", "2")        # shorter than the cap: all of it
    assert all(len(s.history) <= 3 for s in split.train)
    assert split.valid == [] and split.test == []
    assert split.dropped_empty_history == {"train": 1, "valid": 1, "test": 1}


def test_samples_carry_the_user_profile():
    profile = UserProfile("1", "24", "M", "technician")
    split = build_split(_dataset(TEN, {"1": profile}), "temporal")
    assert split.valid[0].profile == profile
    assert split.test[0].profile is None  # user 2 has no profile
    assert split.profiles == {"1": profile}


def test_unknown_protocol_is_refused():
    with pytest.raises(ValueError, match="unknown protocol"):
        build_split(_dataset(TEN), "random")


def test_leave_one_out_last_is_test_second_to_last_is_valid():
    rows = [
        ("1", "5", 1),                                          # 1 interaction: train (dropped)
        ("2", "1", 2), ("2", "2", 9),                           # 2: train (dropped), test
        ("3", "1", 3), ("3", "2", 4), ("3", "3", 5), ("3", "4", 6),  # 4: train x2, valid, test
        ("4", "7", 1), ("4", "8", 7), ("4", "9", 8),            # 3: train (dropped), valid, test
    ]
    split = build_split(_dataset(rows[::-1]), "loo")  # input order must not matter
    assert _ids(split.train) == ["3:1"]
    assert split.train[0].history == ("1",) and split.train[0].target == "2"
    assert sorted((s.sample_id, s.history, s.target) for s in split.valid) == [
        ("3:2", ("1", "2"), "3"), ("4:1", ("7",), "8")]
    assert sorted((s.sample_id, s.history, s.target) for s in split.test) == [
        ("2:1", ("1",), "2"), ("3:3", ("1", "2", "3"), "4"), ("4:2", ("7", "8"), "9")]
    assert split.dropped_empty_history == {"train": 4, "valid": 0, "test": 0}
    assert split.train_sequences == {"1": ["5"], "2": ["1"], "3": ["1", "2"], "4": ["7"]}


def test_k_core_iterates_to_a_fixed_point():
    # k=2. Pass 1 drops (3, c): item c has 1 interaction. Pass 2 then drops (3, a): user 3 has
    # only 1 left. One pass alone would have kept (3, a).
    rows = [("1", "a", 1), ("1", "b", 2), ("2", "a", 3), ("2", "b", 4), ("3", "a", 5), ("3", "c", 6)]
    kept = filter_k_core([Interaction(*r) for r in rows], 2)
    assert [(x.user_id, x.item_id) for x in kept] == [("1", "a"), ("1", "b"), ("2", "a"), ("2", "b")]
    split = build_split(_dataset(rows), "loo", k_core=2)
    assert set(split.sequences) == {"1", "2"}


def test_k_core_cascade_can_empty_the_data():
    # a 3-cycle of users and items, each with exactly 2: fine at k=2, everything gone at k=3
    rows = [("1", "a", 1), ("1", "b", 2), ("2", "b", 3), ("2", "c", 4), ("3", "c", 5), ("3", "a", 6)]
    xs = [Interaction(*r) for r in rows]
    assert filter_k_core(xs, 2) == xs
    assert filter_k_core(xs, 3) == []


def test_seen_items_is_the_whole_past_not_just_the_history():
    split = build_split(_dataset(TEN), "temporal", max_history=1)
    test = split.test[0]
    assert test.history == ("10",)
    assert split.seen_items(test) == {"1", "9", "10"}
    assert split.seen_items(split.valid[0]) == {"1", "2", "3"}
    first_train = split.train[0]  # "1:1": only item 1 before it
    assert split.seen_items(first_train) == {"1"}


def test_train_item_counts_cover_training_sequences_only():
    split = build_split(_dataset(TEN), "temporal")
    # train sequences: u1 [1, 2, 3], u2 [1, 9, 10], u10 [3, 1]; valid/test items are not counted
    assert split.train_item_counts() == {"1": 3, "2": 1, "3": 2, "9": 1, "10": 1}
