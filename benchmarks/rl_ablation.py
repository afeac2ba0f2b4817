"""RL ablation: does RL lift the SFT policy? SFT start, the sft_continued control, recipes, RISER ablations.

    python -m benchmarks.rl_ablation --schemes atomic --seeds 3 rl.steps=300
    python -m benchmarks.rl_ablation --schemes atomic sid --seeds 3 device=cuda

Per identifier scheme and seed: the SFT policy (cached bundle), then every RL row
trained from it on the same prompts (rl.prompts) for the same steps; each row is
evaluated on the same 5,000 temporal test samples. Rows hold the mean ± std over
seeds; intervals are 95 % paired bootstraps over users of NDCG@10(row) − NDCG@10(ref)
per seed pair (ref = the same seed's SFT start) and against SASRec (seed 0).
Writes reports/rl_ablation.md + .json + learning curves (PNG). Bundles are cached
under runs/, so a rerun only evaluates.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import METRIC_KEYS, evaluate_bundle, paired_interval, policy_config, run_baseline
from training.config import SeqConfig, load_config
from training.devices import resolve_device
from training.eval.report import write_report
from training.pipeline import prepare_data, train_policy_bundle, train_rl_bundle

PRESETS = {"atomic": "atomic", "sid": "default"}
# row name -> (recipe preset, extra overrides); RISER ablations drop one part each
VARIANTS = {
    "sft_continued": ("sft_continued", []),
    "grpo_basic": ("grpo_basic", []),
    "riser": ("riser", []),
    "riser-no_simpo": ("riser", ["rl.simpo_weight=0"]),
    "riser-no_mask": ("riser", ["rl.certainty_d=null"]),
    "riser-no_klcov": ("riser", ["rl.kl_cov_ratio=0"]),
    "riser-no_oversampling": ("riser", ["rl.oversample=0"]),
    "gream_srpo": ("gream_srpo", []),
    "recllm_r1": ("recllm_r1", []),
    "grpo_basic+ce": ("grpo_basic", ["rl.ce_weight=1.0"]),  # GRPO plus the control's cross-entropy
}
SID_ONLY = {"gream_srpo", "riser-no_mask"}  # prefix reward and the certainty mask need multi-token ids


def run_seed(scheme: str, seed: int, variants: list[str], overrides: list[str], catalog, split,
             cached_only: bool = False) -> dict:
    """{row name: {"metrics", "predictions", "seconds", "log"}} for one scheme and seed.

    cached_only: skip the SFT seeds and RL rows whose bundle was not trained before (their rows average fewer
    seeds; a row no seed trained is left out).
    """
    base = policy_config(PRESETS[scheme], "temporal", [f"sft.seed={seed}", *overrides])
    if cached_only and not (Path(base.runs_dir) / base.name / "bundle" / "manifest.json").exists():
        return {}
    started = time.time()
    parent, _ = train_policy_bundle(base, catalog, split, device=resolve_device(base.device))
    out = {"sft": {**_evaluated(base, parent, catalog, split), "seconds": time.time() - started}}
    for name in variants:
        recipe, extra = VARIANTS[name]
        cfg = load_config(recipe, ["data.protocol=temporal", f"rl.seed={seed}", *overrides, *extra,
                                   f"name={base.name}-{name}"])
        if cached_only and not (Path(cfg.runs_dir) / cfg.name / "bundle" / "manifest.json").exists():
            continue
        started = time.time()
        bundle, _ = train_rl_bundle(cfg, parent, catalog, split, device=resolve_device(cfg.device))
        log = [json.loads(x) for x in (bundle.parent / "train" / "rl_log.jsonl").read_text().splitlines()]
        out[name] = {**_evaluated(cfg, bundle, catalog, split), "seconds": time.time() - started, "log": log}
        print(f"[{scheme} seed {seed}] {name}: NDCG@10 {out[name]['metrics']['ndcg@10']:.4f} "
              f"(sft {out['sft']['metrics']['ndcg@10']:.4f})", flush=True)
    return out


def _evaluated(cfg, bundle: Path, catalog, split) -> dict:
    return {"metrics": evaluate_bundle(cfg, bundle, catalog, split),
            "predictions": bundle.parent / "eval" / "predictions.jsonl"}


def interval(predictions: Path, reference: Path) -> list[float]:
    ci = paired_interval(predictions, reference)
    return [round(ci["lo"], 4), round(ci["hi"], 4)]


def aggregate(name: str, scheme: str, per_seed: list[dict], sasrec: Path) -> dict:
    """One report row: mean metrics over seeds, std of NDCG@10/HR@10, intervals per seed pair."""
    pairs = [(s[name], s["sft"]) for s in per_seed if name in s]
    runs = [r for r, _ in pairs]
    metrics = {k: float(np.mean([r["metrics"][k] for r in runs])) for k in METRIC_KEYS
               if all(r["metrics"].get(k) is not None for r in runs)}
    for key in ("ndcg@10", "hr@10"):
        metrics[f"{key}_std"] = float(np.std([r["metrics"][key] for r in runs]))
    sft = [s for _, s in pairs]
    metrics["ratio_ndcg@10_vs_sft"] = metrics["ndcg@10"] / float(np.mean([r["metrics"]["ndcg@10"] for r in sft]))
    row = {"name": f"{name}_{scheme}", "dataset": "ml-100k", "protocol": "temporal", "metrics": metrics,
           "seconds": {"train_and_eval": round(float(np.mean([r["seconds"] for r in runs])), 1)},
           "predictions": str(runs[0]["predictions"]),
           "ci95_per_seed_vs_sasrec": [interval(r["predictions"], sasrec) for r in runs],
           "notes": f"mean of {len(runs)} seeds; {runs[0]['metrics']['subset_note']}; seen items not filtered"}
    if name != "sft":
        row["ci95_per_seed_vs_sft"] = [interval(r["predictions"], s["predictions"]) for r, s in zip(runs, sft,
                                                                                                     strict=True)]
        row["ci95"] = {"ndcg@10": row["ci95_per_seed_vs_sft"][0]}
        row["notes"] += "; ci95: NDCG@10 difference to the SFT start of the same seed (seed 0; all seeds in json)"
    controls = [s["sft_continued"] for s in per_seed if name in s and "sft_continued" in s]
    if name not in ("sft", "sft_continued") and len(controls) == len(runs):
        metrics["ratio_ndcg@10_vs_control"] = metrics["ndcg@10"] / float(
            np.mean([c["metrics"]["ndcg@10"] for c in controls]))
        row["ci95_per_seed_vs_control"] = [interval(r["predictions"], c["predictions"])
                                           for r, c in zip(runs, controls, strict=True)]
    return row


def plot_curves(per_scheme: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(per_scheme), figsize=(6 * len(per_scheme), 4), squeeze=False)
    for ax, (scheme, seeds) in zip(axes[0], per_scheme.items(), strict=True):
        for name, run in seeds[0].items():
            if "log" in run:
                points = [(r["step"], r["valid_ndcg@10"]) for r in run["log"] if "valid_ndcg@10" in r]
                ax.plot(*zip(*points, strict=True), marker="o", label=name)
        ax.set(title=f"{scheme} ids, seed 0", xlabel="RL step", ylabel="valid NDCG@10")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemes", nargs="+", default=["atomic"], choices=sorted(PRESETS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--train-only", nargs="*", type=int, metavar="SEED",
                        help="only train (cache) the bundles of these seeds; no SASRec, no report. Lets seeds run "
                             "as parallel processes before one run with every seed writes the report")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--cached-only", action="store_true",
                        help="report from trained bundles only (RL rows of seeds not trained are left out of means)")
    parser.add_argument("--notes-file", type=Path, default=Path("benchmarks/rl_ablation_notes.md"))
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. rl.steps=300 device=cuda")
    args = parser.parse_args()
    cfg = policy_config("atomic", "temporal", args.overrides)
    catalog, split = prepare_data(cfg)
    if args.train_only is not None:
        for scheme in args.schemes:
            variants = [v for v in args.variants if scheme == "sid" or v not in SID_ONLY]
            for seed in args.train_only:
                run_seed(scheme, seed, variants, args.overrides, catalog, split)
        return
    sasrec = run_baseline("sasrec", cfg, catalog, split, config=SeqConfig(hidden=128, dropout=0.2),
                          tag="h128-d0.2-s0")
    rows, per_scheme = [], {}
    for scheme in args.schemes:
        variants = [v for v in args.variants if scheme == "sid" or v not in SID_ONLY]
        per_seed = [run_seed(scheme, seed, variants, args.overrides, catalog, split, args.cached_only)
                    for seed in range(args.seeds)]
        per_scheme[scheme] = per_seed
        rows += [aggregate(name, scheme, per_seed, Path(sasrec["predictions"])) for name in ["sft", *variants]
                 if any(name in seed for seed in per_seed)]
    rows.append({**sasrec, "notes": sasrec["notes"] + "; seed 0, the reference of ci95_per_seed_vs_sasrec"})
    plot_curves(per_scheme, Path("reports/rl_ablation_curves.png"))
    notes = args.notes_file.read_text() if args.notes_file.exists() else ""
    write_report("rl_ablation", rows, "python -m " + " ".join(["benchmarks.rl_ablation", *sys.argv[1:]]),
                 notes_md="![learning curves](rl_ablation_curves.png)\n\n" + notes)


if __name__ == "__main__":
    main()
