"""Speed of trie-constrained beam search on one policy bundle: HF `generate` with a trie logits processor, our
batched KV-cache search through the transformers model (the prompt's cache repeated per beam), and the same search
with the shared-prompt forward (training/models/lean_decoder.py: each prompt's cache kept once).

    python -m benchmarks.beam_speed --bundle runs/<sft run>/bundle --batch-sizes 64,8,1

Every backend ranks the same seeded test samples with beam width 20 at each batch size (64: offline evaluation;
8 and 1: what the serving engine batches); the report gives ms per sample, the ratio to HF `generate` and to the
previous search, and the top-10 agreement with HF `generate` (they should return the same items).
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


def run_batch_size(recommenders: dict, samples, batch_size: int) -> list[dict]:
    """One row per backend at this batch size, with ratios and the top-10 overlap with hf_generate.

    recommenders: name -> (recommender, lean flag or None), in the order hf_generate, batched_kv_beam,
    shared_prompt_beam."""
    rows, ranked = [], {}
    for name, (rec, lean) in recommenders.items():
        if lean is not None:
            rec.generator.lean = lean
        seconds, ranked[name] = time_backend(rec, samples, batch_size)
        rows.append({"name": f"{name}_b{batch_size}", "dataset": "ml-100k", "protocol": "temporal",
                     "metrics": {"ms_per_sample": 1000 * seconds / len(samples)},
                     "seconds": {"rank": round(seconds, 2)},
                     "notes": f"{len(samples)} test samples, batch {batch_size}, beam 20, top-20"})
    hf_ms, kv_ms = rows[0]["metrics"]["ms_per_sample"], rows[1]["metrics"]["ms_per_sample"]
    for row, name in zip(rows[1:], list(recommenders)[1:], strict=True):
        row["metrics"]["ratio"] = hf_ms / row["metrics"]["ms_per_sample"]
        overlap = sum(len(set(a[:10]) & set(b[:10])) for a, b in zip(ranked["hf_generate"], ranked[name], strict=True))
        row["metrics"]["top10_overlap"] = overlap / (10 * len(samples))
        row["notes"] += "; ratio = hf_generate ms / this ms; top10_overlap vs hf_generate"
    rows[2]["metrics"]["ratio_vs_kv_beam"] = kv_ms / rows[2]["metrics"]["ms_per_sample"]
    rows[2]["notes"] += "; ratio_vs_kv_beam = batched_kv_beam ms / this ms"
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--batch-sizes", default="64", help="comma-separated, e.g. 64,8,1")
    parser.add_argument("--note", default="", help="conditions of the run, printed in the report")
    args = parser.parse_args()
    cfg = load_config("default")
    _, split = prepare_data(cfg)
    samples = select_subset(split.test, args.samples, 0)
    batched = load_recommender(args.bundle, cfg.device, beam_width=20)
    hf = PolicyRecommender(batched.model, batched.tokenizer, batched.scheme, batched.catalog, 20,
                           name="hf_generate", backend="hf_generate")
    recommenders = {"hf_generate": (hf, None), "batched_kv_beam": (batched, False),
                    "shared_prompt_beam": (batched, True)}
    sizes = [int(size) for size in args.batch_sizes.split(",")]
    rows = [row for size in sizes for row in run_batch_size(recommenders, samples, size)]
    notes = (f"Policy: {args.bundle} ({batched.scheme.name} ids, depth {batched.scheme.depth}). {args.note}").strip()
    write_report("beam_speed", rows, "python -m " + " ".join(["benchmarks.beam_speed", *sys.argv[1:]]),
                 notes_md=notes, plot_metric="ms_per_sample")


if __name__ == "__main__":
    main()
