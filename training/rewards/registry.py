"""Reward registry: every reward is a pure function registered by name (DESIGN.md §2, §5).

A recipe YAML names its rewards; trainers look them up with `get_reward(name)`.
Every reward scores a whole rollout group and returns `list[float]`, one reward
per completion, in the group's order (TRL's convention).
"""

from __future__ import annotations

from collections.abc import Callable

REWARDS: dict[str, Callable[..., list[float]]] = {}


def register_reward(name: str) -> Callable[[Callable[..., list[float]]], Callable[..., list[float]]]:
    """Decorator: register `fn` under `name`; a second function under the same name is an error."""

    def deco(fn: Callable[..., list[float]]) -> Callable[..., list[float]]:
        if name in REWARDS and REWARDS[name] is not fn:
            raise ValueError(f"reward {name!r} is already registered (by {REWARDS[name].__qualname__})")
        REWARDS[name] = fn
        return fn

    return deco


def get_reward(name: str) -> Callable[..., list[float]]:
    """The reward registered as `name`; a ValueError that lists the known names otherwise."""
    try:
        return REWARDS[name]
    except KeyError:
        known = ", ".join(sorted(REWARDS)) or "(none)"
        raise ValueError(f"unknown reward {name!r}; known rewards: {known}") from None
