"""Foundation benchmark: pop, sft (SID policy) and sft_atomic on ML-100k, temporal protocol.

    python -m benchmarks.foundation

Reproduces the demo's evaluation and writes reports/foundation.md + .json
(shape: shared/REPORTS.md), with wall time per stage and the SID collision rate.
Bundles are cached under runs/, so a second run only re-evaluates.
"""

from __future__ import annotations

import argparse
import sys
import time

from benchmarks.common import policy_config, run_baseline, run_policy
from training.data.fetch import fetch_ml100k
from training.eval.report import write_report
from training.pipeline import prepare_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="config overrides for the policies, e.g. sft.max_epochs=4")
    args = parser.parse_args()
    started = time.time()
    fetch_ml100k(__import__("pathlib").Path("data"))
    fetch_seconds = time.time() - started
    cfg = policy_config("default", "temporal", args.overrides)
    started = time.time()
    catalog, split = prepare_data(cfg)
    split_seconds = time.time() - started
    rows = [run_baseline("pop", cfg, catalog, split)]
    rows.append(run_policy("sft", cfg, catalog, split))
    rows.append(run_policy("sft_atomic", policy_config("atomic", "temporal", args.overrides), catalog, split))
    for row in rows:
        row["seconds"] = {"fetch": round(fetch_seconds, 1), "split": round(split_seconds, 1), **row["seconds"]}
    pop = rows[0]["metrics"]["ndcg@10"]
    notes = "\n".join(
        f"- `{r['name']}` NDCG@10 / pop NDCG@10 = {r['metrics']['ndcg@10'] / pop:.2f}" for r in rows[1:]
    )
    write_report("foundation", rows, "python -m " + " ".join(["benchmarks.foundation", *sys.argv[1:]]),
                 notes_md="Ratios (same evaluator, same 5,000 test samples):\n\n" + notes)


if __name__ == "__main__":
    main()
