"""Preprocessing and splits, exactly as DESIGN.md §3 defines them.

- interactions stably sorted by (timestamp, user id, item id), numeric ids in
  numeric order;
- `temporal`: global 8:1:1 split of that order (RISER, RPORec, R2ec);
  `loo`: per user, last item test, second-to-last validation (RecBole, GREAM);
- a sample = (last <= `max_history` items before it, the item), with
  `sample_id = "<user_id>:<position in the user's sequence>"`; samples with an
  empty history are dropped and counted.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from training.catalog import id_sort_key
from training.data.types import Interaction, RawDataset, Sample, UserProfile

PROTOCOLS = ("temporal", "loo")


@dataclass
class SplitData:
    """train/valid/test samples + every user's full item sequence (raw ids, time order).

    `train_sequences[u]` is the part of u's sequence that belongs to training;
    `dropped_empty_history` counts samples dropped per split.
    """

    protocol: str
    train: list[Sample]
    valid: list[Sample]
    test: list[Sample]
    sequences: dict[str, list[str]]
    train_sequences: dict[str, list[str]]
    profiles: dict[str, UserProfile] = field(default_factory=dict)
    dropped_empty_history: dict[str, int] = field(default_factory=dict)
    content_hash: str = ""

    def train_item_counts(self) -> dict[str, int]:
        return dict(Counter(i for seq in self.train_sequences.values() for i in seq))

    def seen_items(self, sample: Sample) -> set[str]:
        """The user's whole past before the sample (DESIGN.md §3 "seen items")."""
        return set(self.sequences[sample.user_id][: sample.position])


def sort_interactions(interactions: list[Interaction]) -> list[Interaction]:
    return sorted(
        interactions, key=lambda x: (x.timestamp, id_sort_key(x.user_id), id_sort_key(x.item_id))
    )


def filter_k_core(interactions: list[Interaction], k: int) -> list[Interaction]:
    """Iteratively drop users and items with fewer than k interactions."""
    current = list(interactions)
    while True:
        users = Counter(x.user_id for x in current)
        items = Counter(x.item_id for x in current)
        kept = [x for x in current if users[x.user_id] >= k and items[x.item_id] >= k]
        if len(kept) == len(current):
            return kept
        current = kept


def _assign_temporal(ordered: list[Interaction], ratios: tuple[float, float, float]) -> list[str]:
    n = len(ordered)
    cut_train = int(round(n * ratios[0]))
    cut_valid = int(round(n * (ratios[0] + ratios[1])))
    return ["train" if g < cut_train else "valid" if g < cut_valid else "test" for g in range(n)]


def _assign_loo(ordered: list[Interaction]) -> list[str]:
    lengths = Counter(x.user_id for x in ordered)
    seen: Counter[str] = Counter()
    labels = []
    for x in ordered:
        remaining = lengths[x.user_id] - seen[x.user_id]
        seen[x.user_id] += 1
        if remaining == 1 and lengths[x.user_id] >= 2:
            labels.append("test")
        elif remaining == 2 and lengths[x.user_id] >= 3:
            labels.append("valid")
        else:
            labels.append("train")
    return labels


def build_split(
    dataset: RawDataset,
    protocol: str = "temporal",
    max_history: int = 20,
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    k_core: int = 0,
) -> SplitData:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
    interactions = filter_k_core(dataset.interactions, k_core) if k_core > 1 else dataset.interactions
    ordered = sort_interactions(interactions)
    labels = _assign_temporal(ordered, ratios) if protocol == "temporal" else _assign_loo(ordered)
    sequences: dict[str, list[str]] = defaultdict(list)
    train_sequences: dict[str, list[str]] = defaultdict(list)
    parts: dict[str, list[Sample]] = {"train": [], "valid": [], "test": []}
    dropped = {"train": 0, "valid": 0, "test": 0}
    for x, part in zip(ordered, labels, strict=True):
        seq = sequences[x.user_id]
        position = len(seq)
        if part == "train":
            train_sequences[x.user_id].append(x.item_id)
        if position == 0:
            dropped[part] += 1
        else:
            history = tuple(seq[max(0, position - max_history):])
            parts[part].append(Sample(f"{x.user_id}:{position}", x.user_id, history, x.item_id,
                                      dataset.users.get(x.user_id)))
        seq.append(x.item_id)
    return SplitData(protocol, parts["train"], parts["valid"], parts["test"], dict(sequences),
                     dict(train_sequences), dict(dataset.users), dropped)
