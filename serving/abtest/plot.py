"""CTR per arm with its 95 % Wilson interval, the control's CTR as a dashed line (PNG)."""

from __future__ import annotations

import math
from pathlib import Path

from serving.abtest.readout import Readout


def plot_ctr(readout: Readout, path: Path) -> Path | None:
    """Write the plot to `path`; None when no arm has an exposure."""
    arms = [a for a in readout.arms if a.exposures > 0]
    if not arms:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = list(range(len(arms)))
    ctrs = [a.ctr for a in arms]
    errors = [[a.ctr - a.ctr_ci[0] for a in arms], [a.ctr_ci[1] - a.ctr for a in arms]]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(arms) + 2), 3.5))
    colors = ["C1" if a.name == readout.control else "C0" for a in arms]
    ax.bar(xs, ctrs, color=colors, alpha=0.6)
    ax.errorbar(xs, ctrs, yerr=errors, fmt="none", ecolor="black", capsize=6)
    control = readout.arm(readout.control)
    if not math.isnan(control.ctr):
        ax.axhline(control.ctr, color="C1", linestyle="--", linewidth=1, label=f"control ({control.name})")
        ax.legend(fontsize=8)
    ax.set_xticks(xs, [f"{a.name}\n{a.clicks}/{a.exposures}" for a in arms], fontsize=8)
    ax.set_ylabel("CTR (clicks / exposures), 95% Wilson")
    ax.set_title(f"experiment {readout.experiment}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
