"""Offline replay: HR@k / NDCG@k of each arm's exposed lists against the users' held-out next items.

The held-out log is a JSONL file, one interaction a line, `{"user_id", "item_id"}` (a feedback or event log)
or `{"user_id", "target"}` (a split's test.jsonl); a split folder stands for its test.jsonl. Each held-out
(user, item) of a user the arm exposed is one sample, scored against that user's exposed list (their first
request in the arm, see aggregate.py) with training/eval/metrics.py, exactly as the offline evaluator scores
a ranked list against its target; metrics are means over samples. Users without an exposed list are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from training.eval.metrics import per_sample_metrics


def read_next_items(path: str | Path) -> dict[str, list[str]]:
    """user_id -> held-out item ids in file order; ValueError naming the line for a malformed one."""
    path = Path(path)
    if path.is_dir():
        path = path / "test.jsonl"
    next_items: dict[str, list[str]] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            user, item = row["user_id"], row["item_id"] if "item_id" in row else row["target"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ValueError(f"{path}:{number}: expected a JSON object with user_id and item_id (or target)") \
                from None
        next_items.setdefault(str(user), []).append(str(item))
    return next_items


def replay_metrics(exposed_lists: Mapping[str, Sequence[str]], next_items: Mapping[str, Sequence[str]],
                   ks: Sequence[int] = (10,)) -> dict[str, float]:
    """{"hr@k", "ndcg@k" (means over samples), "replay_samples", "replay_users"}; {} when no user overlaps."""
    users = [u for u in exposed_lists if next_items.get(u)]
    lists = [list(exposed_lists[u]) for u in users for _ in next_items[u]]
    targets = [item for u in users for item in next_items[u]]
    if not targets:
        return {}
    per_sample = per_sample_metrics(lists, targets, ks)
    metrics = {name: float(values.mean()) for name, values in per_sample.items()}
    return metrics | {"replay_samples": len(targets), "replay_users": len(users)}
