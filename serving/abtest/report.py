"""A readout as a REPORTS.md report: one row per arm (named by the arm) and one `srm` row with a verdict;
markdown with the A/B tables; a PNG of CTR with intervals (`<name>_ctr.png`).

Row metrics: users, first_users, requests, exposures, clicks, orphan_clicks, ctr, lift (not on the control),
hr@k / ndcg@k / replay_samples / replay_users (with a held-out log). ci95: ctr (Wilson), lift (delta method),
lift_bootstrap (users resampled). JSON has no NaN: an undefined value is null or left out.
"""

from __future__ import annotations

import math
from pathlib import Path

from serving.abtest.plot import plot_ctr
from serving.abtest.readout import ArmResult, Readout
from training.eval.report import write_report

DEFINITIONS = (
    "Definitions: an exposure is one item shown in one response (one exposure event); a click counts when it "
    "matches an exposure by (request_id, item_id), at most one per exposure, others are orphan clicks; "
    "CTR = clicks / exposures with a 95 % Wilson interval; lift = CTR_arm / CTR_control - 1 with the log-ratio "
    "delta-method 95 % interval (exposures treated as independent; the bootstrap resamples users). "
    "SRM: users counted by their first assignment, chi-square against the configured weights."
)


def _num(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and not math.isfinite(value)) else value


def _interval(pair) -> list[float] | None:
    if pair is None or any(_num(v) is None for v in pair):
        return None
    return [float(pair[0]), float(pair[1])]


def arm_row(arm: ArmResult, readout: Readout) -> dict:
    metrics = {"users": arm.users, "first_users": arm.first_users, "requests": arm.requests,
               "exposures": arm.exposures, "clicks": arm.clicks, "orphan_clicks": arm.orphan_clicks,
               "ctr": _num(arm.ctr)}
    intervals = {"ctr": _interval(arm.ctr_ci)}
    if arm.lift is not None:
        metrics["lift"] = _num(arm.lift.lift)
        intervals |= {"lift": _interval(arm.lift[1:]), "lift_bootstrap": _interval(arm.lift_bootstrap)}
    metrics |= arm.replay
    notes = "control" if arm.name == readout.control else f"lift = ctr / ctr of {readout.control} - 1"
    return {"name": arm.name, "dataset": None, "protocol": None, "experiment": readout.experiment,
            "weight": arm.weight, "metrics": metrics, "ci95": {k: v for k, v in intervals.items() if v},
            "notes": notes}


def srm_row(readout: Readout) -> dict:
    srm = readout.srm
    checks = {"multi_arm_users": readout.multi_arm_users, "other_arm_events": sum(readout.other_arm_events.values()),
              "dropped_rows": readout.dropped_rows}
    if srm is None:
        return {"name": "srm", "dataset": None, "protocol": None, "experiment": readout.experiment,
                "metrics": checks, "verdict": "no_users", "notes": "no user in an arm of weight > 0"}
    weights = ":".join(f"{w:g}" for w in srm.weights.values())
    return {"name": "srm", "dataset": None, "protocol": None, "experiment": readout.experiment,
            "metrics": {"chi2": srm.chi2, "dof": srm.dof, "p_value": srm.p_value, "alpha": srm.alpha,
                        "users": sum(srm.counts.values())} | checks,
            "verdict": "pass" if srm.passed else "fail", "counts": srm.counts, "untested": srm.untested,
            "notes": f"users by first assignment vs weights {weights}; fail when p < {srm.alpha:g}"}


def readout_rows(readout: Readout) -> list[dict]:
    return [arm_row(a, readout) for a in readout.arms] + [srm_row(readout)]


def _pct(value: float | None) -> str:
    return "–" if _num(value) is None else f"{100 * value:+.1f} %"


def _span(pair, fmt) -> str:
    pair = _interval(pair)
    return "–" if pair is None else f"[{fmt(pair[0])}, {fmt(pair[1])}]"


def arms_table(readout: Readout) -> str:
    head = ["arm", "weight", "users", "requests", "exposures", "clicks", "CTR", "CTR 95 % (Wilson)",
            "lift", "lift 95 % (delta)", "lift 95 % (bootstrap)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for a in readout.arms:
        lift = a.lift or (None, None, None)
        cells = [a.name + (" (control)" if a.name == readout.control else ""), f"{a.weight:g}", a.users,
                 a.requests, a.exposures, a.clicks, "–" if math.isnan(a.ctr) else f"{a.ctr:.4f}",
                 _span(a.ctr_ci, lambda v: f"{v:.4f}"), _pct(lift[0]), _span(lift[1:], _pct),
                 _span(a.lift_bootstrap, _pct)]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def srm_text(readout: Readout) -> str:
    srm = readout.srm
    if srm is None:
        return "SRM: no user in an arm of weight > 0."
    total, weight_sum = sum(srm.counts.values()), sum(srm.weights.values())
    counts = ", ".join(f"{arm} {n} (expected {total * srm.weights[arm] / weight_sum:.1f})"
                       for arm, n in srm.counts.items())
    verdict = "pass" if srm.passed else "**FAIL: sample ratio mismatch, do not trust the lifts**"
    text = f"SRM: chi2 = {srm.chi2:.3f}, dof {srm.dof}, p = {srm.p_value:.3g} → {verdict} (alpha {srm.alpha:g}). " \
           f"Users by first assignment: {counts}."
    if srm.untested:
        text += f" Zero-weight arms (forced traffic, not tested): {srm.untested}."
    return text + (f" Users seen in several arms: {readout.multi_arm_users}." if readout.multi_arm_users else "")


def replay_table(readout: Readout) -> str:
    arms = [a for a in readout.arms if a.replay]
    if not arms:
        return ""
    keys = [k for k in arms[0].replay if k.startswith(("hr@", "ndcg@"))] + ["replay_samples", "replay_users"]
    lines = ["| arm | " + " | ".join(keys) + " |", "|" + "---|" * (len(keys) + 1)]
    for a in arms:
        cells = [f"{a.replay[k]:.4f}" if isinstance(a.replay[k], float) else str(a.replay[k]) for k in keys]
        lines.append(f"| {a.name} | " + " | ".join(cells) + " |")
    return "Offline replay of each arm's exposed lists against the held-out next items:\n\n" + "\n".join(lines)


def readout_markdown(readout: Readout, plot_name: str | None = None) -> str:
    parts = [f"## A/B readout: experiment `{readout.experiment}`, control `{readout.control}`",
             arms_table(readout), srm_text(readout), replay_table(readout)]
    if plot_name:
        parts.append(f"![CTR per arm with 95 % Wilson intervals]({plot_name})")
    if readout.other_arm_events:
        parts.append(f"Events of arms outside the experiment (ignored): {readout.other_arm_events}.")
    parts.append(DEFINITIONS)
    return "\n\n".join(p for p in parts if p)


def write_readout(readout: Readout, out: Path, command: str) -> tuple[Path, Path, Path | None]:
    """out = reports/ab_readout -> reports/ab_readout.{md,json} and reports/ab_readout_ctr.png."""
    out = Path(out)
    png = plot_ctr(readout, out.parent / f"{out.name}_ctr.png")
    md, js = write_report(out.name, readout_rows(readout), command, out.parent,
                          notes_md=readout_markdown(readout, png.name if png else None), plot_metric=None)
    return md, js, png
