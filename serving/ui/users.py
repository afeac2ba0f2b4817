"""What the page shows about a user: the history (titles, years, genres), the items the user interacted with after
the training part (from a split folder, when `ui.split_dir` is set), whether a chain of thought is cached.

The history is the one serving reads (the feature store); with Redis down the split's training history is shown
instead and `history_source` says so. A user known to neither is unknown (404).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from feature_store.errors import StoreError, StoreUnavailable
from feature_store.schema import decode_history
from feature_store.store import FeatureStore
from training.catalog import Catalog, id_sort_key
from training.data.split import SplitData

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UserView:
    user_id: str
    history: list[dict]
    history_source: str  # "redis" | "split"
    later: list[dict]  # items after the training part, in time order ([] without a split)
    cached_cot: bool
    notes: list[str] = field(default_factory=list)


class UserLookupError(LookupError):
    """The user has no history in the store nor in the split."""


def describe_item(catalog: Catalog | None, item_id: str) -> dict:
    """{"item_id", "title", "year", "genres"}; an item the catalog lacks is named by its id."""
    if catalog is None or item_id not in catalog:
        return {"item_id": item_id, "title": item_id, "year": "", "genres": []}
    info = catalog.info(item_id)
    return {"item_id": item_id, "title": info.title, "year": info.year, "genres": list(info.genres)}


def later_items(split: SplitData | None, user_id: str) -> list[str]:
    """The user's interactions after the training part (validation and test), oldest first."""
    if split is None or user_id not in split.sequences:
        return []
    full, train = split.sequences[user_id], split.train_sequences.get(user_id, [])
    return list(full[len(train):])


def split_user_ids(split: SplitData, prefix: str, limit: int) -> list[str]:
    """Users of the split with a training history whose id starts with `prefix`, in id order, at most `limit`."""
    users = (u for u in sorted(split.train_sequences, key=id_sort_key) if split.train_sequences[u])
    return [u for u in users if u.startswith(prefix)][:limit]


class UserDirectory:
    """Users and their histories for the page; the split folder (optional) is loaded on first use."""

    def __init__(self, catalog: Catalog | None, store: FeatureStore, split_dir: str | None, max_users: int):
        self.catalog, self.store, self.split_dir, self.max_users = catalog, store, split_dir, max_users
        self._split: SplitData | None = None
        self._split_error: str | None = None
        self._loaded = split_dir is None
        self._load_lock = threading.Lock()

    def split(self) -> SplitData | None:
        """The split (the first call loads it, once, blocking); None without one or when it failed to load."""
        with self._load_lock:
            if not self._loaded:
                self._load_split()
        return self._split

    def _load_split(self) -> None:
        from training.data.store import load_split

        try:
            self._split = load_split(Path(self.split_dir))
        except (OSError, ValueError, RuntimeError) as err:
            self._split_error = f"split folder {self.split_dir!r} not loaded: {err}"
            log.warning(self._split_error)
        self._loaded = True

    def user_ids(self, prefix: str = "") -> tuple[list[str], str]:
        """(up to max_users ids starting with `prefix`, source "split" | "redis")."""
        split = self.split()
        if split is not None:
            return split_user_ids(split, prefix, self.max_users), "split"
        ids: list[str] = []
        for user in self.store.scan_users():
            if user.startswith(prefix):
                ids.append(user)
            if len(ids) >= self.max_users:
                break
        return sorted(ids, key=id_sort_key), "redis"

    def view(self, user_id: str) -> UserView:
        """The user's page data; UserLookupError when no history is known anywhere."""
        split, notes = self.split(), [self._split_error] if self._split_error else []
        history, source, cached_cot = self._stored(user_id, notes)
        if history is None and split is not None and split.train_sequences.get(user_id):
            history, source = list(split.train_sequences[user_id]), "split"
        if not history:
            raise UserLookupError(f"user {user_id!r} has no history in the feature store"
                                  + (" nor in the split" if split is not None else ""))
        return UserView(user_id, [describe_item(self.catalog, i) for i in history], source,
                        [describe_item(self.catalog, i) for i in later_items(split, user_id)], cached_cot, notes)

    def _stored(self, user_id: str, notes: list[str]) -> tuple[Sequence[str] | None, str, bool]:
        try:
            row = self.store.read([user_id], ("history", "cot"))[0]
        except StoreUnavailable as err:
            notes.append(f"feature store unreachable ({err}); showing the split's training history")
            return None, "split", False
        if not row or not row.get("history"):
            return None, "redis", False
        try:
            return decode_history(row["history"]), "redis", bool(row.get("cot"))
        except StoreError:
            notes.append("the stored history is unreadable")
            return None, "redis", False
