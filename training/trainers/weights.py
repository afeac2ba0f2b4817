"""Weight snapshots for best-validation bookkeeping (the RL, reasoning-RL and R²ec loops)."""

from __future__ import annotations

import torch


def copy_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every tensor of `model.state_dict()` (restore it with `load_state_dict`)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class BestWeights:
    """Best-validation bookkeeping of a training loop (higher metric is better): the best metric, its step and a
    copy of the weights, and how many evaluations since were not better (for early stopping).

    metric: the metric of the starting weights (None: no evaluation yet; the first `offer` is then the best).
    """

    def __init__(self, model: torch.nn.Module, metric: float | None = None, step: int = 0):
        self.model, self.metric, self.step = model, metric, step
        self.state = copy_state(model) if metric is not None else None
        self.worse = 0

    def offer(self, metric: float, step: int) -> bool:
        """Record an evaluation; keeps a copy of the weights when it beats the best (returns True)."""
        if self.metric is None or metric > self.metric:
            self.metric, self.step, self.state, self.worse = metric, step, copy_state(self.model), 0
            return True
        self.worse += 1
        return False

    def restore(self) -> None:
        """Load the best weights back into the model (nothing to do before any evaluation)."""
        if self.state is not None:
            self.model.load_state_dict(self.state)
