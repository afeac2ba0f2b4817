"""Rollout engines on one policy: constrained sampling, top-20 items and weight sync (vLLM vs ours vs HF).

    python -m benchmarks.rollout_speed --bundles runs/<atomic sft>/bundle runs/<sid sft>/bundle

Per bundle, the same seeded test prompts go through
- constrained sampling, n samples per prompt at temperature 1: HF `generate` (do_sample with the
  trie logits processor, per-token policy log-probs from its raw logits) — the baseline —, our
  batched KV-cache trie sampler, and vLLM with the trie-mask logits processor;
- top-20 items: our batched beam vs vLLM's level-by-level beam (exact log P; overlap reported);
- weight sync policy -> vLLM: seconds per in-place sync and the largest |log P| difference to
  our beam on the synced weights afterwards (exactness).
Every engine is warmed up first; each figure is the median of `--repeats` timed runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from training.config import load_config
from training.eval.report import write_report
from training.eval.subset import select_subset
from training.inference import load_recommender
from training.pipeline import prepare_data
from training.rollout.backend import BatchedTrieEngine
from training.rollout.hf_sampling import hf_generate_sample
from training.rollout.vllm_backend import VLLMTrieEngine


def median_seconds(fn, repeats: int):
    fn()  # warm-up
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def sampling_rows(engines: dict, prompts, n: int, repeats: int, trie, label: str) -> list[dict]:
    rows = []
    for name, sample in engines.items():
        seconds, groups = median_seconds(lambda s=sample: s(prompts, n), repeats)
        completions = [c for g in groups for c in g]
        tokens = sum(len(c.token_ids) for c in completions)
        rows.append({"name": name, "metrics": {
            "ms_per_prompt": 1000 * seconds / len(prompts), "samples_per_s": len(completions) / seconds,
            "tokens_per_s": tokens / seconds,
            "invalid_rate": sum(c.item not in trie for c in completions) / len(completions)},
            "seconds": {"sample": round(seconds, 3)},
            "notes": f"{label}; constrained sampling, {len(prompts)} prompts x n={n}, temperature 1"})
    base = rows[0]["metrics"]["ms_per_prompt"]
    for row in rows:
        row["metrics"]["ratio"] = base / row["metrics"]["ms_per_prompt"]
        row["notes"] += f"; ratio = {rows[0]['name']} ms / this row's ms"
    return rows


def top_item_rows(ours, vllm, prompts, repeats: int, label: str) -> list[dict]:
    rows, ranked = [], {}
    for name, engine in (("batched_kv_beam", ours), ("vllm_top20", vllm)):
        seconds, ranked[name] = median_seconds(lambda e=engine: e.top_items(prompts, 20), repeats)
        rows.append({"name": name, "metrics": {"ms_per_prompt": 1000 * seconds / len(prompts)},
                     "seconds": {"top_items": round(seconds, 3)},
                     "notes": f"{label}; top-20 items, beam 20, {len(prompts)} prompts"})
    pairs = list(zip(ranked["batched_kv_beam"], ranked["vllm_top20"], strict=True))
    rows[1]["metrics"]["ratio"] = rows[0]["metrics"]["ms_per_prompt"] / rows[1]["metrics"]["ms_per_prompt"]
    rows[1]["metrics"]["top20_overlap"] = sum(len({i for i, _ in a} & {i for i, _ in b}) for a, b in pairs) / (
        20 * len(pairs))
    rows[1]["notes"] += "; ratio = batched_kv_beam ms / vllm ms; top20_overlap vs batched_kv_beam"
    return rows


def sync_row(model, ours, vllm, prompts, repeats: int, label: str) -> dict:
    generator = torch.Generator().manual_seed(0)
    times = []
    for _ in range(repeats + 1):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1e-3 * torch.randn(p.shape, generator=generator))
        started = time.perf_counter()
        vllm.sync_weights(model.state_dict())
        times.append(time.perf_counter() - started)
    exact = max(abs(a[1] - b[1]) for x, y in zip(ours.top_items(prompts, 20), vllm.top_items(prompts, 20), strict=True)
                for a, b in zip(x, y, strict=True))
    seconds = statistics.median(times[1:])
    return {"name": "vllm_weight_sync", "metrics": {"sync_s": seconds, "max_abs_logprob_diff": exact},
            "seconds": {"sync": round(seconds, 4)},
            "notes": f"{label}; in-place reload + tied-embedding re-pack + prefix-cache reset, median of {repeats}; "
                     "max_abs_logprob_diff: top-20 log P vs our beam on the synced weights"}


def bench_bundle(bundle: Path, samples, args) -> list[dict]:
    rec = load_recommender(bundle, "cpu", beam_width=20)
    prompts = [rec.prompt_ids(s) for s in samples]
    depth, label = rec.generator.depth, f"{rec.scheme.name} ids (depth {rec.generator.depth})"
    ours = BatchedTrieEngine(rec.model, rec.trie, depth, rec.tokenizer.pad_token_id, 20)
    vllm = VLLMTrieEngine(bundle / "policy", rec.trie, depth, rec.tokenizer.eos_token_id, 20)
    gen = torch.Generator().manual_seed(0)
    engines = {
        "hf_generate": lambda p, n: hf_generate_sample(rec.model, rec.trie, p, n, depth,
                                                       rec.tokenizer.pad_token_id, args.hf_batch),
        "batched_kv_sampler": lambda p, n: ours.sample(p, n, generator=gen),
        "vllm_sampler": lambda p, n: vllm.sample(p, n, generator=gen),
    }
    rows = sampling_rows(engines, prompts, args.n, args.repeats, rec.trie, label)
    rows += top_item_rows(ours, vllm, prompts, args.repeats, label)
    rows.append(sync_row(rec.model, ours, vllm, prompts[:16], args.repeats, label))
    scheme = "atomic" if depth == 1 else "sid"
    return [{**row, "name": f"{row['name']}_{scheme}", "dataset": "ml-100k", "protocol": "temporal"}
            for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", type=Path, nargs="+", required=True)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hf-batch", type=int, default=16, help="prompts per HF generate call")
    parser.add_argument("--note", default="", help="conditions of the run, printed in the report")
    args = parser.parse_args()
    _, split = prepare_data(load_config("default"))
    samples = select_subset(split.test, args.prompts, 0)
    rows = [row for bundle in args.bundles for row in bench_bundle(bundle, samples, args)]
    write_report("rollout_speed", rows, "python -m " + " ".join(["benchmarks.rollout_speed", *sys.argv[1:]]),
                 notes_md=args.note, plot_metric="ms_per_prompt")


if __name__ == "__main__":
    main()
