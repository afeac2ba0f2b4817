"""The two error types of the feature store.

`StoreUnavailable`: Redis cannot be reached or does not answer, after the
store's bounded retries. `StoreError`: the caller asked for something invalid
(a bad field name, a job id reused with other settings, a schema mismatch).
"""

from __future__ import annotations


class StoreUnavailable(RuntimeError):
    """Redis is unreachable or timed out after bounded retries; the message names the URL and the operation."""


class StoreError(ValueError):
    """Bad input to the store: unknown field, reused job id with other settings, schema version mismatch."""
