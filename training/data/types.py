"""Plain records that cross every boundary of the trainer.

Ids are the raw dataset ids (strings) everywhere outside models; contiguous
indices exist only inside models and FAISS and are mapped by the catalog
(DESIGN.md §3).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Interaction:
    user_id: str
    item_id: str
    timestamp: int


@dataclass(frozen=True)
class ItemInfo:
    """One catalog item: `title` is the raw title; `year` and `genres` may be empty."""

    item_id: str
    title: str
    year: str = ""
    genres: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """Text used for embeddings: "title (year) genre, genre"."""
        year = f" ({self.year})" if self.year else ""
        genres = f" {', '.join(self.genres)}" if self.genres else ""
        return f"{self.title}{year}{genres}"


@dataclass(frozen=True)
class UserProfile:
    user_id: str
    age: str = ""
    gender: str = ""
    occupation: str = ""


@dataclass
class RawDataset:
    """What an adapter returns: every item of the item file, every interaction."""

    name: str
    interactions: list[Interaction]
    items: dict[str, ItemInfo]
    users: dict[str, UserProfile] = field(default_factory=dict)


@dataclass(frozen=True)
class Sample:
    """One next-item prediction case.

    sample_id: "<user_id>:<position of the target in the user's full sequence>".
    history: the last <= 20 raw item ids before the target, oldest first.
    profile: the user's profile (may be None when the dataset has none).
    """

    sample_id: str
    user_id: str
    history: tuple[str, ...]
    target: str
    profile: UserProfile | None = None

    @property
    def position(self) -> int:
        return int(self.sample_id.rsplit(":", 1)[1])
