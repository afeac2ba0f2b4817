"""Quality benchmark: every registered model on the same splits and evaluator, both protocols.

    python -m benchmarks.quality                       # temporal + loo, CPU
    python -m benchmarks.quality --protocols temporal device=cuda sft.max_epochs=12

Rows: pop, sasrec (small sweep of hidden size x dropout picked on validation
NDCG@10, then mean ± std over seeds), gru4rec (seeds), sft (SID policy),
sft_atomic. Each row has a 95 % paired-bootstrap interval over users of its
NDCG@10 difference to SASRec (seed 0), on identical test samples. Writes
reports/quality.md + .json + a bar chart. Resumable: a row already in
reports/quality.json for the same git commit and settings is kept, and trained
bundles under runs/ are reused. Rows of other protocols already in the report
are kept (each row names its command and git commit).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks.common import paired_interval, policy_config, run_baseline, run_policy
from training.config import SeqConfig
from training.eval.report import git_commit, load_rows, merge_rows, write_report
from training.eval.subset import select_subset
from training.pipeline import prepare_data
from training.trainers.sft import validate

REPORT = Path("reports/quality.json")
SWEEP = [(64, 0.2), (128, 0.2), (128, 0.5)]


def settings_hash(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def pick_sasrec_config(cfg, catalog, split) -> tuple[SeqConfig, list[dict]]:
    """Train each sweep point (seed 0) and keep the best by validation NDCG@10."""
    from training.baselines.bundle import train_baseline_bundle
    from training.devices import resolve_device
    from training.inference import load_recommender

    valid = select_subset(split.valid, 2000, 0)
    trials = []
    for hidden, dropout in SWEEP:
        config = SeqConfig(hidden=hidden, dropout=dropout)
        tag = f"h{hidden}-d{dropout}-s0"
        device = resolve_device(cfg.device)
        bundle, _ = train_baseline_bundle("sasrec", cfg, catalog, split, config=config, tag=tag, device=device)
        trials.append({"hidden": hidden, "dropout": dropout,
                       "valid_ndcg@10": validate(load_recommender(bundle, device), valid)})
        print(f"sasrec sweep {tag}: valid NDCG@10 {trials[-1]['valid_ndcg@10']:.4f}", flush=True)
    best = max(trials, key=lambda t: t["valid_ndcg@10"])
    return SeqConfig(hidden=best["hidden"], dropout=best["dropout"]), trials


def seeded_rows(name: str, base: SeqConfig, seeds: int, cfg, catalog, split) -> dict:
    """Train `seeds` seeds; the row holds the mean metrics (+ std of NDCG@10/HR@10), predictions of seed 0."""
    rows = []
    for seed in range(seeds):
        config = base.model_copy(update={"seed": seed})
        tag = f"h{config.hidden}-d{config.dropout}-s{seed}"
        rows.append(run_baseline(name, cfg, catalog, split, config=config, tag=tag, row_name=name))
    row = mean_of_seeds(rows)
    row["notes"] = (f"hidden {base.hidden}, dropout {base.dropout}; mean of {seeds} seeds "
                    f"(predictions: seed 0); " + row["notes"].split("; ", 1)[1])
    return row


def mean_of_seeds(rows: list[dict]) -> dict:
    """rows[0] with every metric averaged over the rows, std of NDCG@10/HR@10, mean train seconds."""
    per_seed = [dict(r["metrics"]) for r in rows]  # copies: rows[0] is overwritten with the means below
    row = rows[0]
    for key in row["metrics"]:
        row["metrics"][key] = float(np.mean([m[key] for m in per_seed]))
    for key in ("ndcg@10", "hr@10"):
        row["metrics"][f"{key}_std"] = float(np.std([m[key] for m in per_seed]))
    row["ndcg@10_per_seed"] = [m["ndcg@10"] for m in per_seed]
    row["seconds"]["train"] = round(float(np.mean([r["seconds"]["train"] for r in rows])), 1)
    return row


def add_intervals(rows: list[dict], skip: set[int] = frozenset()) -> None:
    """ci95 of NDCG@10(row) - NDCG@10(sasrec), paired bootstrap over users, per protocol (rows in `skip` by id
    keep theirs)."""
    for protocol in {r["protocol"] for r in rows}:
        reference = next((r for r in rows if r["protocol"] == protocol and r["name"] == "sasrec"), None)
        if reference is None:
            continue
        for row in rows:
            if row["protocol"] != protocol or row is reference or id(row) in skip:
                continue
            ci = paired_interval(Path(row["predictions"]), Path(reference["predictions"]))
            row["ci95"] = {"ndcg@10": [round(ci["lo"], 4), round(ci["hi"], 4)]}
            row["metrics"]["ratio_ndcg@10_vs_sasrec"] = row["metrics"]["ndcg@10"] / reference["metrics"]["ndcg@10"]
            row["notes"] += "; ci95: NDCG@10 difference to sasrec seed 0; ratio: over sasrec's mean NDCG@10"


def run_protocol(protocol: str, args, existing: dict) -> list[dict]:
    cfg = policy_config("default", protocol, args.overrides)
    catalog, split = prepare_data(cfg)
    rows = []

    def cached(name: str, settings: str, build) -> None:
        key = (name, protocol, settings)
        row = existing.get(key) or build()
        row["settings"] = settings
        rows.append(row)
        print(f"[{protocol}] {name}: NDCG@10 {row['metrics']['ndcg@10']:.4f}", flush=True)

    kept = {r["name"]: r for r in load_rows(REPORT) if r["protocol"] == protocol and r["name"] in args.keep_rows}
    for name in args.keep_rows:
        if name not in kept:
            raise SystemExit(f"--keep-rows {name}: no {protocol} row named {name!r} in {REPORT}")
        rows.append(kept[name])
    if "pop" not in kept:
        cached("pop", settings_hash("pop"), lambda: run_baseline("pop", cfg, catalog, split))
    if "sasrec" not in kept:
        best, trials = pick_sasrec_config(cfg, catalog, split)
        cached("sasrec", settings_hash("sasrec", best.model_dump(), args.seeds),
               lambda: {**seeded_rows("sasrec", best, args.seeds, cfg, catalog, split), "sweep": trials})
    if "gru4rec" not in kept:
        if "sasrec" in kept:
            raise SystemExit("--keep-rows sasrec: keep gru4rec too (it uses the SASRec sweep's configuration)")
        gru = SeqConfig(hidden=best.hidden, dropout=best.dropout)
        cached("gru4rec", settings_hash("gru4rec", gru.model_dump(), args.seeds),
               lambda: seeded_rows("gru4rec", gru, args.seeds, cfg, catalog, split))
    for name, preset in (("sft", "default"), ("sft_atomic", "atomic")):
        pcfg = policy_config(preset, protocol, args.overrides)
        cached(name, settings_hash(name, pcfg.model_dump(), args.policy_seeds),
               lambda n=name, p=preset: seeded_policy_row(n, p, protocol, args, catalog, split))
    return rows


def seeded_policy_row(name: str, preset: str, protocol: str, args, catalog, split) -> dict:
    """The policy over `args.policy_seeds` seeds (sft.seed = 0..n-1): mean metrics, std of NDCG@10/HR@10."""
    runs = [run_policy(name, policy_config(preset, protocol, [*args.overrides, f"sft.seed={seed}"]), catalog, split)
            for seed in range(args.policy_seeds)]
    row = mean_of_seeds(runs)
    row["notes"] = f"mean of {len(runs)} seeds (predictions: seed 0); " + row["notes"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocols", nargs="+", default=["temporal", "loo"], choices=["temporal", "loo"])
    parser.add_argument("--seeds", type=int, default=3, help="seeds for the classic baselines")
    parser.add_argument("--policy-seeds", type=int, default=3, help="seeds for the policy rows (sft.seed)")
    parser.add_argument("--notes-file", type=Path, default=Path("benchmarks/quality_notes.md"),
                        help="markdown appended to the report (what was tried)")
    parser.add_argument("--keep-rows", nargs="*", default=[], choices=["pop", "sasrec", "gru4rec"],
                        help="take these rows from reports/quality.json as they are (their own command and commit) "
                             "instead of retraining them")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. device=cuda sft.max_epochs=12")
    args = parser.parse_args()
    commit = git_commit()
    existing = {(r["name"], r["protocol"], r.get("settings")): r
                for r in load_rows(REPORT) if r.get("git_commit") == commit}
    command = "python -m " + " ".join(["benchmarks.quality", *sys.argv[1:]])
    rows = [row for protocol in args.protocols for row in run_protocol(protocol, args, existing)]
    kept = {id(row) for row in rows if row["name"] in args.keep_rows}
    add_intervals(rows, skip=kept)
    for row in rows:
        if id(row) not in kept:
            row.update(command=command, git_commit=commit)
    with open(REPORT.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # protocols may run as parallel processes: merge under the lock
        merged = merge_rows(REPORT, rows)
        extra = args.notes_file.read_text() if args.notes_file.exists() else ""
        commands = " ; ".join(dict.fromkeys(r.get("command", command) for r in merged))
        write_report("quality", merged, commands, notes_md=notes_markdown(merged) + "\n\n" + extra)


def notes_markdown(rows: list[dict]) -> str:
    lines = ["Seen items are not filtered. Intervals: 95 % paired bootstrap over users (2,000 resamples) of "
             "NDCG@10(model) - NDCG@10(sasrec, seed 0) on identical test samples.", ""]
    for r in rows:
        if "ci95" in r:
            lo, hi = r["ci95"]["ndcg@10"]
            lines.append(f"- {r['protocol']} `{r['name']}`: ×{r['metrics']['ratio_ndcg@10_vs_sasrec']:.2f} of "
                         f"SASRec's mean NDCG@10; difference to SASRec seed 0, 95 % CI [{lo:+.4f}, {hi:+.4f}]")
    return "\n".join(lines + ["", "NDCG@10 over seeds (mean ± std; per seed where the row kept them):", "",
                               *seed_lines(rows)])


def seed_lines(rows: list[dict]) -> list[str]:
    """One line per multi-seed row: mean ± std of NDCG@10 and, when recorded, each seed's value."""
    lines = []
    for r in rows:
        metrics = r["metrics"]
        if "ndcg@10_std" not in metrics:
            continue
        seeds = r.get("ndcg@10_per_seed")
        listed = f" (seeds {' / '.join(f'{v:.4f}' for v in seeds)})" if seeds else ""
        lines.append(f"- {r['protocol']} `{r['name']}`: {metrics['ndcg@10']:.4f} ± {metrics['ndcg@10_std']:.4f}"
                     + listed)
    return lines


if __name__ == "__main__":
    main()
