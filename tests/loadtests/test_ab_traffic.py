"""Simulated traffic: the better list by hand, the synthetic world, the log and held-out files."""

from __future__ import annotations

import json
import random

import pytest

from loadtests.ab_traffic import (
    Traffic,
    World,
    better_list,
    simulated_users,
    synthetic_world,
    write_log,
    write_next_log,
)
from serving.experiments import ArmAssigner
from serving.feedback import read_jsonl
from serving.settings import ArmSettings, ExperimentSettings

WORLD = World({"b1": ["x", "y"], "b2": ["p1"]}, ["p1", "p2", "p3", "p4"])
EXPERIMENT = ExperimentSettings(name="e", salt="s", arms=[
    ArmSettings(name="ctl", mode="direct", bundle="a", weight=50),
    ArmSettings(name="trt", mode="direct", bundle="a", weight=50)])


@pytest.mark.timeout(10)
def test_better_list_takes_next_items_with_probability_quality():
    assert better_list(WORLD, ["x", "y"], 3, 0.0, random.Random(0)) == ["p1", "p2", "p3"]
    assert sorted(better_list(WORLD, ["x", "y"], 3, 1.0, random.Random(0))) == ["p1", "x", "y"]
    assert better_list(WORLD, ["p1"], 2, 1.0, random.Random(0)) == ["p1", "p2"]  # a popular truth is not repeated


@pytest.mark.timeout(10)
def test_synthetic_world_is_seeded():
    first = synthetic_world(n_users=5, n_items=30, n_next=4, seed=1)
    assert first == synthetic_world(n_users=5, n_items=30, n_next=4, seed=1)
    assert all(len(set(items)) == 4 for items in first.next_items.values())
    assert simulated_users(first, 7)[5:] == [("sim5", "b0"), ("sim6", "b1")]


@pytest.mark.timeout(10)
def test_write_log_assigns_by_the_real_assigner(tmp_path):
    traffic = Traffic(users=40, k=3, quality=1.0, click_prob=1.0, noise=0.0)
    per_arm = write_log(WORLD, EXPERIMENT, [50, 50], traffic, tmp_path / "log.jsonl")
    rows = list(read_jsonl(tmp_path / "log.jsonl"))
    assigner = ArmAssigner.of(EXPERIMENT)
    assert all(row["arm"] == assigner.assign(row["user_id"]) for row in rows)
    assert sum(per_arm.values()) == 40 and sum(r["event"] == "exposure" for r in rows) == 120
    # control shows p1 p2 p3: b2's user clicks p1; trt shows both truths of b1 users and p1 for b2 users
    clicks = [(r["arm"], r["user_id"], r["item_id"]) for r in rows if r["event"] == "click"]
    assert all(item in WORLD.next_items[f"b{1 + int(user[3:]) % 2}"] for _, user, item in clicks)
    assert write_log(WORLD, EXPERIMENT, [100, 0], traffic, tmp_path / "log.jsonl") == {"ctl": 40}  # fresh file
    lines = write_next_log(WORLD, 2, tmp_path / "next.jsonl", per_user=1).read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"user_id": "sim0", "item_id": "x"},
                                                    {"user_id": "sim1", "item_id": "p1"}]
