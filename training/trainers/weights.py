"""Weight snapshots for best-validation bookkeeping (the RL, reasoning-RL and R²ec loops)."""

from __future__ import annotations

import torch


def copy_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every tensor of `model.state_dict()` (restore it with `load_state_dict`)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
