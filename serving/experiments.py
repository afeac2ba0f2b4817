"""A/B assignment: sticky, salted, bucketed (DESIGN.md §6).

A user's bucket is `sha256(f"{experiment}:{salt}:{user_id}")`, first 8 bytes big-endian, mod 10,000.
Arms own consecutive bucket ranges in config order, sized by their weights:

    bounds_i = round(N * (w_1 + ... + w_i) / W)      arm i owns buckets [bounds_{i-1}, bounds_i)

so a user stays in the same arm on every call and every replica. Changing weights moves only the buckets
between an old and a new boundary: 50/50 -> 60/40 moves buckets [5000, 6000), 10 % of users, all from the
second arm to the first; an arm whose range did not change keeps every one of its users. Changing the salt
(or the experiment name) reshuffles everyone. A zero-weight arm owns no bucket but can still be forced
with the `X-Reasonrec-Arm` header (for testing).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right

from pydantic import PrivateAttr

from serving.errors import UnknownArm
from serving.settings import ArmSettings, ExperimentSettings

N_BUCKETS = 10_000
FORCE_ARM_HEADER = "X-Reasonrec-Arm"

__all__ = ["FORCE_ARM_HEADER", "N_BUCKETS", "ArmAssigner", "UnknownArm", "bucket_of"]


def bucket_of(experiment: str, salt: str, user_id: str, n_buckets: int = N_BUCKETS) -> int:
    """The user's bucket in [0, n_buckets): sha256 of "experiment:salt:user_id", first 8 bytes big-endian, mod n."""
    digest = hashlib.sha256(f"{experiment}:{salt}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % n_buckets


def bucket_bounds(weights: list[float], n_buckets: int = N_BUCKETS) -> list[int]:
    """Upper bucket bound of each arm: round(n * cumulative weight / total); the last is n_buckets."""
    total = sum(weights)
    bounds, cumulative = [], 0.0
    for weight in weights:
        cumulative += weight
        bounds.append(round(n_buckets * cumulative / total))
    bounds[-1] = n_buckets
    return bounds


class ArmAssigner(ExperimentSettings):
    """An experiment that assigns users to arms. Build it from settings with `ArmAssigner.of(experiment)`."""

    _bounds: list[int] = PrivateAttr(default_factory=list)

    def model_post_init(self, context: object) -> None:
        self._bounds = bucket_bounds([a.weight for a in self.arms])

    @classmethod
    def of(cls, experiment: ExperimentSettings) -> ArmAssigner:
        return cls.model_validate(experiment.model_dump())

    @property
    def arm_names(self) -> list[str]:
        return [a.name for a in self.arms]

    def bucket_ranges(self) -> dict[str, tuple[int, int]]:
        """Arm name -> its half-open bucket range [lo, hi) (empty for a zero-weight arm)."""
        lows = [0, *self._bounds[:-1]]
        return {a.name: (lo, hi) for a, lo, hi in zip(self.arms, lows, self._bounds, strict=True)}

    def bucket(self, user_id: str) -> int:
        return bucket_of(self.name, self.salt, user_id)

    def assign(self, user_id: str, forced: str | None = None) -> str:
        """The user's arm name; `forced` (the header's value) wins when given and must be an arm of this
        experiment, else UnknownArm (-> 422) listing the arms. An empty `forced` counts as not given."""
        if forced:
            if self.arm(forced) is None:
                raise UnknownArm(forced, self.name, self.arm_names)
            return forced
        return self.arms[bisect_right(self._bounds, self.bucket(user_id))].name

    def assign_arm(self, user_id: str, forced: str | None = None) -> ArmSettings:
        """Like `assign`, returning the arm's settings."""
        return self.arm(self.assign(user_id, forced))
