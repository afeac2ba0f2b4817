"""Benchmark reports in the one shape of REPORTS.md: reports/<name>.json + reports/<name>.md (+ PNG).

JSON: {benchmark, created_at (UTC, ISO, "Z"), command, git_commit, machine
{cpu, cores, gpu}, rows}; each row {name, dataset, protocol, metrics, seconds,
notes, ...optional keys}. Resumable scripts merge new rows into the old file
with `merge_rows`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from training.eval.metrics import REPORTED_METRICS

REPO_ROOT = Path(__file__).resolve().parents[2]
MAIN_METRICS = REPORTED_METRICS
ROW_KEY = ("name", "dataset", "protocol")


def git_commit(cwd: Path = REPO_ROOT) -> str:
    """Short hash of HEAD, "unknown" when git fails (no repo, no commit, no git)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def cpu_model() -> str:
    """The first "model name" of /proc/cpuinfo, "unknown" when unreadable."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def gpu_name() -> str | None:
    """torch.cuda device 0's name, None without CUDA (or torch)."""
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:
        return None


def machine_info() -> dict:
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "gpu": gpu_name()}


def load_rows(path: Path) -> list[dict]:
    """The rows of a report JSON, [] when the file does not exist."""
    path = Path(path)
    return json.loads(path.read_text()).get("rows", []) if path.exists() else []


def _key(row: dict, key: Sequence[str]) -> tuple:
    return tuple(row.get(k) for k in key)


def merge_rows(existing_json_path: Path, new_rows: list[dict], key: Sequence[str] = ROW_KEY) -> list[dict]:
    """Old rows with new ones merged in: a new row replaces the old row of the same key
    (in place), other old rows are kept, new keys are appended in their order."""
    new_by_key = {_key(r, key): r for r in new_rows}
    merged, used = [], set()
    for row in load_rows(existing_json_path):
        k = _key(row, key)
        merged.append(new_by_key.get(k, row))
        used.add(k)
    for row in new_rows:
        k = _key(row, key)
        if k not in used:
            merged.append(row)
            used.add(k)
    return merged


def _fmt(v: object) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1000 else f"{v:.1f}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def _metric_columns(rows: list[dict]) -> list[str]:
    present = [k for r in rows for k in r.get("metrics", {})]
    main = [m for m in MAIN_METRICS if m in present]
    ranking = any(m.startswith(("hr", "ndcg")) for m in main)
    return main if ranking else list(dict.fromkeys(present))  # speed reports: every metric they have


def markdown_table(rows: list[dict]) -> str:
    """One table row per report row: name, dataset, protocol, main metrics, seconds, notes."""
    metrics = _metric_columns(rows)
    header = ["name", "dataset", "protocol", *metrics, "seconds", "notes"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        secs = ", ".join(
            (f"{k} {v:.1f}" if v >= 1 else f"{k} {v:.3f}") if isinstance(v, int | float) else f"{k} {v}"
            for k, v in (r.get("seconds") or {}).items()
        )
        notes = r.get("notes", "")
        if r.get("ci95"):
            notes = f"{notes}; ci95 " + ", ".join(
                f"{m} [{lo:.4f}, {hi:.4f}]" for m, (lo, hi) in r["ci95"].items()
            )
        cells = [r.get("name"), r.get("dataset"), r.get("protocol")]
        cells += [r.get("metrics", {}).get(m) for m in metrics] + [secs, notes]
        lines.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
    return "\n".join(lines)


def plot_rows(rows: list[dict], metric: str, path: Path) -> Path | None:
    """Bar chart of `metric` per row, grouped by protocol; None when no row has the metric."""
    rows = [r for r in rows if isinstance(r.get("metrics", {}).get(metric), int | float)]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protocols = list(dict.fromkeys(str(r.get("protocol")) for r in rows))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * len(rows) + 1.5 * len(protocols)), 4))
    x, ticks, labels = 0.0, [], []
    for i, proto in enumerate(protocols):
        group = [r for r in rows if str(r.get("protocol")) == proto]
        xs = [x + j for j in range(len(group))]
        ax.bar(xs, [r["metrics"][metric] for r in group], color=f"C{i}", label=proto)
        ticks += xs
        labels += [f"{r.get('name')} ({r.get('dataset')})" for r in group]
        x += len(group) + 1
    ax.set_xticks(ticks, labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel(metric)
    ax.legend(title="protocol")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(
    name: str,
    rows: list[dict],
    command: str,
    out_dir: Path = Path("reports"),
    notes_md: str = "",
    plot_metric: str | None = "ndcg@10",
) -> tuple[Path, Path]:
    """Write out_dir/<name>.json (REPORTS.md shape), out_dir/<name>.md and out_dir/<name>_<metric>.png.

    Returns (md_path, json_path).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": name,
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command,
        "git_commit": git_commit(),
        "machine": machine_info(),
        "rows": rows,
    }
    json_path = out_dir / f"{name}.json"
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")

    m = report["machine"]
    parts = [
        f"# {name}",
        f"`{command}` — commit `{report['git_commit']}`, {report['created_at']}, "
        f"{m['cpu']} ({m['cores']} cores), GPU: {m['gpu'] or 'none'}",
        markdown_table(rows),
    ]
    if plot_metric:
        safe_metric = re.sub(r"[^\w@.-]", "_", plot_metric)
        png = plot_rows(rows, plot_metric, out_dir / f"{name}_{safe_metric}.png")
        if png is not None:
            parts.append(f"![{plot_metric} by protocol]({png.name})")
    if notes_md:
        parts.append(notes_md.strip())
    md_path = out_dir / f"{name}.md"
    md_path.write_text("\n\n".join(parts) + "\n")
    return md_path, json_path
