"""Events -> per-arm tallies of one experiment.

Definitions (the readout's units):
- exposure: one exposure event, i.e. one item shown in one response (per item, not per request). The log keeps
  one event per (request_id, item_id, event); events without a request_id are all kept, so each one counts.
- click: a click event attributed to an exposure: the exposure with the same (request_id, item_id), or, for a
  click without a request_id, an exposure without one of the same (arm, user_id, item_id). Each exposure takes
  at most one click, so clicks <= exposures; other clicks are `orphan_clicks` (reported, not in the CTR).
- request: a distinct request_id among the arm's exposures.
- users: distinct users with any event in the arm; `first_users`: users whose first event (earliest ts) is in
  the arm, the count the SRM check uses (a forced arm or a weight change can move a user later).
- exposed list: a user's first request in the arm (its exposures in log order, repeats dropped; exposures
  without a request_id form one list per user) - what the offline replay scores.
Events of arms outside the experiment are counted in `other_arm_events` and otherwise ignored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from serving.abtest.events import Event


@dataclass
class ArmTally:
    exposures: int = 0
    clicks: int = 0
    orphan_clicks: int = 0
    first_users: int = 0
    users: set[str] = field(default_factory=set)
    requests: set[str] = field(default_factory=set)
    user_exposures: Counter[str] = field(default_factory=Counter)
    user_clicks: Counter[str] = field(default_factory=Counter)
    exposed_lists: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Tallies:
    arms: dict[str, ArmTally]
    other_arm_events: Counter[str]
    multi_arm_users: int


def exposure_key(event: Event) -> tuple:
    """What a click is matched on: (request_id, item_id), else (arm, user_id, item_id) without a request_id."""
    if event.request_id is not None:
        return ("request", event.request_id, event.item_id)
    return ("user", event.arm, event.user_id, event.item_id)


def first_arms(events: Sequence[Event]) -> dict[str, str]:
    """user_id -> the arm of the user's first event (events oldest first)."""
    first: dict[str, str] = {}
    for event in events:
        first.setdefault(event.user_id, event.arm)
    return first


def _count_exposures(events: Sequence[Event], arms: dict[str, ArmTally]) -> dict[tuple, Event]:
    """Adds exposures, requests and exposed lists to `arms`; returns exposure key -> its first exposure."""
    shown: dict[tuple, Event] = {}
    list_group: dict[tuple[str, str], str | None] = {}
    for event in events:
        if event.event != "exposure":
            continue
        tally = arms[event.arm]
        tally.exposures += 1
        tally.user_exposures[event.user_id] += 1
        if event.request_id is not None:
            tally.requests.add(event.request_id)
        shown.setdefault(exposure_key(event), event)
        group = list_group.setdefault((event.arm, event.user_id), event.request_id)
        items = tally.exposed_lists.setdefault(event.user_id, [])
        if event.request_id == group and event.item_id not in items:
            items.append(event.item_id)
    return shown


def _count_clicks(events: Sequence[Event], arms: dict[str, ArmTally], shown: dict[tuple, Event]) -> None:
    clicked: set[tuple] = set()
    for event in events:
        if event.event != "click":
            continue
        key = exposure_key(event)
        exposure = shown.get(key)
        if exposure is None or key in clicked:
            arms[event.arm].orphan_clicks += 1
            continue
        clicked.add(key)
        arms[exposure.arm].clicks += 1
        arms[exposure.arm].user_clicks[exposure.user_id] += 1


def tally(events: Sequence[Event], arm_names: Sequence[str]) -> Tallies:
    """Per-arm counts of the experiment whose arms are `arm_names` (events oldest first)."""
    arms = {name: ArmTally() for name in arm_names}
    ours = [e for e in events if e.arm in arms]
    other = Counter(e.arm for e in events if e.arm not in arms)
    for event in ours:
        arms[event.arm].users.add(event.user_id)
    for arm in first_arms(ours).values():
        arms[arm].first_users += 1
    shown = _count_exposures(ours, arms)
    _count_clicks(ours, arms, shown)
    per_user = Counter(user for tally_ in arms.values() for user in tally_.users)
    return Tallies(arms, other, sum(1 for n in per_user.values() if n > 1))
