"""Speed of trie-constrained beam search: our batched KV-cache search vs HF `generate` (same model).

    python -m benchmarks.beam_speed --bundle runs/<sft run>/bundle

Both backends rank the same seeded test samples with beam width 20 on the
same policy bundle; the report gives ms per sample, the ratio, and the top-10
agreement between the two (they should return the same items).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from training.config import load_config
from training.eval.report import write_report
from training.eval.subset import select_subset
from training.inference import load_recommender
from training.models.policy_recommender import PolicyRecommender
from training.pipeline import prepare_data


def time_backend(rec: PolicyRecommender, samples, batch_size: int) -> tuple[float, list[list[str]]]:
    started = time.perf_counter()
    ranked = []
    for start in range(0, len(samples), batch_size):
        ranked.extend(rec.rank(samples[start:start + batch_size], 20))
    return time.perf_counter() - started, ranked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--note", default="", help="conditions of the run, printed in the report")
    args = parser.parse_args()
    cfg = load_config("default")
    _, split = prepare_data(cfg)
    samples = select_subset(split.test, args.samples, 0)
    batched = load_recommender(args.bundle, cfg.device, beam_width=20)
    hf = PolicyRecommender(batched.model, batched.tokenizer, batched.scheme, batched.catalog, 20,
                           name="hf_generate", backend="hf_generate")
    rows, results = [], {}
    for name, rec in (("hf_generate", hf), ("batched_kv_beam", batched)):
        seconds, ranked = time_backend(rec, samples, args.batch_size)
        results[name] = ranked
        rows.append({"name": name, "dataset": "ml-100k", "protocol": "temporal",
                     "metrics": {"ms_per_sample": 1000 * seconds / len(samples)},
                     "seconds": {"rank": round(seconds, 2)},
                     "notes": f"{len(samples)} test samples, batch {args.batch_size}, beam 20, top-20, "
                              f"{batched.scheme.name} ids (depth {batched.scheme.depth})"})
    base = rows[0]["metrics"]["ms_per_sample"]
    rows[1]["metrics"]["ratio"] = base / rows[1]["metrics"]["ms_per_sample"]
    overlap = sum(len(set(a[:10]) & set(b[:10])) for a, b in zip(*results.values(), strict=True))
    rows[1]["metrics"]["top10_overlap"] = overlap / (10 * len(samples))
    rows[1]["notes"] += "; ratio = hf_generate ms / batched ms; top10_overlap vs hf_generate"
    write_report("beam_speed", rows, "python -m " + " ".join(["benchmarks.beam_speed", *sys.argv[1:]]),
                 notes_md=args.note, plot_metric="ms_per_sample")


if __name__ == "__main__":
    main()
