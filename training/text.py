"""Small text helpers for user-facing messages."""

from __future__ import annotations


def shorten(value: object, limit: int = 40) -> str:
    """repr-like text of `value` cut to `limit` characters, so a huge id never floods a message."""
    text = str(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} chars)"
