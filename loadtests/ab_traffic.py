"""Simulated A/B traffic with a known ground truth (used by loadtests/ab_simulation.py).

A world is a set of base users, each with held-out next items (the ground truth), and a popularity ranking.
Simulated user `sim<i>` copies base user i mod B (so a small test split still gives thousands of users).
Arms: the control (the experiment's first arm) shows the top-k popular items; every other arm shows a
"better" list: each slot is one of the user's next items with probability `quality`, else the next popular
item. A user clicks an exposed item that is one of their next items with probability `click_prob`, and any
other exposed item with probability `noise`. Users are assigned by the real `ArmAssigner` (sticky salted
hash) under `weights` (the configured ones for a healthy run, others for a broken split).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serving.experiments import ArmAssigner
from serving.feedback import JsonlFeedbackLog
from serving.settings import ExperimentSettings
from training.catalog import id_sort_key


@dataclass(frozen=True)
class World:
    next_items: dict[str, list[str]]  # base user -> held-out next items, in time order
    popular: list[str]  # item ids, most popular first


@dataclass(frozen=True)
class Traffic:
    users: int = 2000
    k: int = 10
    quality: float = 0.3
    click_prob: float = 0.9
    noise: float = 0.01
    seed: int = 0


def world_from_split(split_dir: Path) -> World:
    """Next items: each test-part user's test targets; popularity: training counts (ties by id)."""
    from training.data.store import load_split

    split = load_split(Path(split_dir))
    next_items: dict[str, list[str]] = {}
    for sample in split.test:
        next_items.setdefault(sample.user_id, []).append(sample.target)
    counts = split.train_item_counts()
    return World(next_items, sorted(counts, key=lambda i: (-counts[i], id_sort_key(i))))


def synthetic_world(n_users: int = 200, n_items: int = 400, n_next: int = 10, seed: int = 0) -> World:
    """Zipf popularity (weight of rank r ∝ 1/(r+1)); each user's next items drawn by popularity, no repeats."""
    rng = np.random.default_rng(seed)
    items = [str(i) for i in range(1, n_items + 1)]
    weights = 1.0 / np.arange(1, n_items + 1)
    weights /= weights.sum()
    next_items = {f"b{u}": [items[j] for j in rng.choice(n_items, size=n_next, replace=False, p=weights)]
                  for u in range(n_users)}
    return World(next_items, items)


def better_list(world: World, truth: list[str], k: int, quality: float, rng: random.Random) -> list[str]:
    """k items: per slot one of `truth` not shown yet with probability `quality`, else the next popular one."""
    pool, shown, popular = list(truth), [], iter(world.popular)
    while len(shown) < k:
        fresh = [i for i in pool if i not in shown]
        if fresh and rng.random() < quality:
            shown.append(rng.choice(fresh))
            continue
        item = next(popular, None)
        if item is None:
            break
        if item not in shown:
            shown.append(item)
    return shown


def _events(user: str, arm: str, items: list[str], truth: set[str], ts: float, traffic: Traffic,
            rng: random.Random) -> list[dict]:
    request = f"{user}-r0"
    rows = [{"ts": ts, "received_at": ts, "user_id": user, "item_id": item, "event": "exposure",
             "request_id": request, "arm": arm} for item in items]
    for item in items:
        chance = traffic.click_prob if item in truth else traffic.noise
        if rng.random() < chance:
            rows.append({"ts": ts + 0.5, "received_at": ts + 0.5, "user_id": user, "item_id": item,
                         "event": "click", "request_id": request, "arm": arm})
    return rows


def simulated_users(world: World, n: int) -> list[tuple[str, str]]:
    """(simulated user id, base user id) for n users, base users in id order, cycled."""
    bases = sorted(world.next_items, key=id_sort_key)
    return [(f"sim{i}", bases[i % len(bases)]) for i in range(n)]


def write_log(world: World, experiment: ExperimentSettings, weights: list[float], traffic: Traffic,
              path: Path) -> Counter[str]:
    """Simulate `traffic.users` users assigned under `weights`; append their events to a fresh JSONL feedback
    log at `path` (serving.feedback.JsonlFeedbackLog). Returns users per arm."""
    arms = [a.model_copy(update={"weight": w}) for a, w in zip(experiment.arms, weights, strict=True)]
    assigner = ArmAssigner.of(experiment.model_copy(update={"arms": arms}))
    control, rng = experiment.arms[0].name, random.Random(traffic.seed)
    path.unlink(missing_ok=True)
    log, rows, per_arm = JsonlFeedbackLog(path), [], Counter()
    for number, (user, base) in enumerate(simulated_users(world, traffic.users)):
        arm = assigner.assign(user)
        truth = world.next_items[base]
        items = world.popular[: traffic.k] if arm == control else better_list(
            world, truth, traffic.k, traffic.quality, random.Random(f"{traffic.seed}:{user}"))
        rows += _events(user, arm, items, set(truth), float(number), traffic, rng)
        per_arm[arm] += 1
    log.append(rows)
    log.close()
    return per_arm


def write_next_log(world: World, n_users: int, path: Path, per_user: int = 5) -> Path:
    """The held-out log of the replay: each simulated user's first `per_user` next items, {user_id, item_id}."""
    with open(path, "w") as out:
        for user, base in simulated_users(world, n_users):
            for item in world.next_items[base][:per_user]:
                out.write(json.dumps({"user_id": user, "item_id": item}) + "\n")
    return path
