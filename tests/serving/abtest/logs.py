"""A hand-written feedback log and serve config for the readout tests (counts worked out in the tests)."""

from __future__ import annotations

import json
from pathlib import Path

CONFIG = """
bundles: {a: runs/none}
experiments:
  - name: exp
    salt: s1
    arms:
      - {name: ctl, mode: direct, bundle: a, weight: 50}
      - {name: trt, mode: direct, bundle: a, weight: 50}
      - {name: forced, mode: direct, bundle: a, weight: 0}
"""


def ev(ts: float, user: str, item: str, event: str, request: str | None, arm: str) -> dict:
    return {"ts": ts, "received_at": ts + 0.5, "user_id": user, "item_id": item, "event": event,
            "request_id": request, "arm": arm}


HAND_LOG = [
    ev(1, "u1", "i1", "exposure", "r1", "ctl"), ev(1, "u1", "i2", "exposure", "r1", "ctl"),
    ev(1, "u1", "i3", "exposure", "r1", "ctl"), ev(2, "u1", "i2", "click", "r1", "ctl"),
    ev(3, "u2", "i1", "exposure", "r2", "ctl"), ev(3, "u2", "i2", "exposure", "r2", "ctl"),
    ev(4, "u2", "i1", "click", "r9", "ctl"),  # no such exposure: orphan
    ev(5, "u3", "i4", "exposure", "r3", "trt"), ev(5, "u3", "i5", "exposure", "r3", "trt"),
    ev(6, "u3", "i4", "click", "r3", "trt"), ev(6, "u3", "i5", "click", "r3", "trt"),
    ev(7, "u3", "i4", "click", "r3", "trt"),  # a second click on one exposure: orphan
    ev(8, "u4", "i1", "exposure", "r4", "trt"), ev(8, "u4", "i4", "exposure", "r4", "trt"),
    ev(9, "u4", "i4", "click", "r4", "trt"),
    ev(20, "u4", "i6", "exposure", "r5", "trt"),  # u4's second request: not in the replayed list
    ev(10, "u5", "i7", "exposure", None, "trt"), ev(11, "u5", "i7", "click", None, "trt"),  # no request_id
    ev(12, "u6", "i1", "exposure", "r7", "old_arm"),  # not an arm of exp
    ev(100, "u1", "i9", "exposure", "r6", "trt"),  # u1 forced into trt later: first arm stays ctl
    {"ts": 13, "user_id": "u7", "item_id": "i1", "event": "view", "arm": "ctl"},  # not an exposure/click: dropped
]
NEXT_ITEMS = [{"user_id": "u1", "item_id": "i2"}, {"user_id": "u3", "item_id": "i5"},
              {"user_id": "u3", "item_id": "i8"}, {"user_id": "u4", "item_id": "i6"}]


def write_jsonl(path: Path, rows: list[dict], torn_tail: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + torn_tail)
    return path


def write_config(folder: Path, text: str = CONFIG) -> Path:
    path = folder / "serve.yaml"
    path.write_text(text)
    return path
