"""Reasoning benchmark (issue 9): direct mode, SASRec, the Rechead and the reasoning policy on the same samples.

    OMP_NUM_THREADS=2 nice -n 10 .venv/bin/python -m benchmarks.reasoning --samples 1000 --reasoning-samples 200 \
        --passk-samples 60          # ~45 min on 2 shared CPU cores; 0 = every row on all --samples

Temporal split, one seeded test subset (`--samples`, `--seed`: `select_subset`, as every benchmark), the one
evaluator (`training.eval.evaluator.evaluate`, full catalog, seen items not filtered). Rows:

- `sft` (direct-mode SID policy, trie beam 20), `sft_atomic` (atomic ids, context), `sasrec`;
- `rechead_history` (cot=none), `rechead_cot` (programmatic-teacher CoT from the history alone);
- on a seeded sub-subset of those samples (`--reasoning-samples`; CoT decoding is the cost on CPU):
  `reasoning_sft` (greedy CoT then the trie-constrained answer: the nearline decode), `reasoning_sft_direct`
  (the same policy in direct mode), `reasoning_sft_pass{K}` (GREAM Pass@K: K CoTs at temperature 0.7, top-p 0.9;
  one draw of max K CoTs per sample, Pass@K from the first K; on a further seeded sub-subset, `--passk-samples`,
  as they decode max K CoTs per sample), `rechead_cot_policy` (the `rechead_cot` model
  fed the policy's own greedy CoT and answer, as serving reads them from the nearline cache).

Intervals: 95 % paired bootstrap over users (`benchmarks.common.paired_interval`) of the NDCG@10 difference to
`sft` on identical samples (sub-subset rows: `sft` cut to the same samples), plus the comparisons the targets
need. Each row's eval lives in runs/reasoning_benchmark/<row>/ and is reused when its key matches.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks.common import METRIC_KEYS, paired_interval
from benchmarks.reasoning_report import not_run, notes_markdown, plot_differences
from benchmarks.reasoning_rows import (
    FixedRankings,
    PolicyCotFeaturizer,
    decode_reasoning,
    first_unseen,
    passk_rankings,
    restrict_predictions,
)
from training.bundle import read_manifest
from training.config import load_config
from training.eval.evaluator import evaluate
from training.eval.report import git_commit, write_report
from training.eval.subset import select_subset
from training.inference import load_recommender
from training.pipeline import prepare_data

OUT = Path("runs/reasoning_benchmark")
REFERENCE = "sft"


class Bench:
    """The shared data of one run: catalog, split, the two sample lists, where rows write."""

    def __init__(self, args):
        self.args = args
        self.cfg = load_config("default", ["data.protocol=temporal", *args.overrides])
        self.catalog, self.split = prepare_data(self.cfg)
        self.samples = select_subset(self.split.test, args.samples, args.seed)
        self.reasoning = select_subset(self.samples, args.reasoning_samples, args.seed)
        self.passk = select_subset(self.reasoning, args.passk_samples, args.seed)
        self.cache = Path(self.cfg.data.data_dir) / "cache"

    def subset_note(self, samples) -> str:
        if len(samples) == len(self.split.test):
            return f"all {len(samples)} test samples"
        return f"{len(samples)} of {len(self.split.test)} test samples (seed {self.args.seed}" + (
            ")" if len(samples) == len(self.samples) else f", seeded sub-subset of the {len(self.samples)})")

    def key(self, row: str, samples, **extra) -> dict:
        return {"row": row, "split_sha256": self.split.content_hash, "n": len(samples), "seed": self.args.seed,
                "sample_ids_head": [s.sample_id for s in samples[:5]], **extra}

    def evaluate_row(self, name: str, recommender, samples, extra_seconds: dict | None = None,
                     notes: str = "") -> dict:
        """The one evaluator on `samples`; predictions in runs/reasoning_benchmark/<name>/."""
        out = OUT / name
        metrics = evaluate(recommender, samples, catalog=self.catalog,
                           train_item_counts=self.split.train_item_counts(), out_dir=out, filter_seen=False,
                           batch_size=self.cfg.eval.batch_size, subset_note=self.subset_note(samples),
                           progress=False)
        row = {"name": name, "dataset": self.cfg.data.dataset, "protocol": "temporal",
               "metrics": {k: metrics[k] for k in METRIC_KEYS if metrics.get(k) is not None},
               "seconds": {**(extra_seconds or {}), "eval": round(metrics["seconds"], 1)},
               "predictions": str(out / "predictions.jsonl"),
               "notes": f"{notes}; {metrics['subset_note']}; seen items filtered: False"}
        row["metrics"]["n_samples"] = len(samples)
        return row


def cached(bench: Bench, name: str, key: dict, build) -> dict:
    """The row saved in runs/reasoning_benchmark/<name>/row.json when its key matches, else build() (saved)."""
    path = OUT / name / "row.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("key") == key and Path(saved["row"]["predictions"]).is_file():
            print(f"{name}: reused {path}", flush=True)
            return saved["row"]
    started = time.time()
    row = build()
    print(f"{name}: NDCG@10 {row['metrics']['ndcg@10']:.4f} HR@10 {row['metrics']['hr@10']:.4f} "
          f"({time.time() - started:.0f} s)", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": key, "row": row}, indent=2))
    return row


def bundle_row(bench: Bench, name: str, bundle: Path, samples, notes: str) -> dict:
    """A bundle (policy, baseline or Rechead) through `load_recommender` and the evaluator."""
    manifest = read_manifest(bundle)

    def build() -> dict:
        recommender = load_recommender(bundle, "cpu", beam_width=bench.cfg.eval.beam_width)
        started = time.time()
        if manifest["kind"] == "rechead":  # encode the subset's texts once (MiniLM), through the data cache
            recommender.featurizer.warm(samples, cache_dir=bench.cache)
        warm = {"encode": round(time.time() - started, 1)} if manifest["kind"] == "rechead" else {}
        return bench.evaluate_row(name, recommender, samples, warm, f"{bundle} ({manifest['bundle_version']}); "
                                  + notes)

    key = bench.key(name, samples, bundle_version=manifest["bundle_version"], beam=bench.cfg.eval.beam_width)
    return cached(bench, name, key, build)


def reasoning_rows(bench: Bench, prefix: str = "reasoning_sft", bundle: Path | None = None,
                   think_tokens: int | None = None, extra_rows: bool = True, pass_rows: bool = True,
                   cot_row: str | None = None, samples=None, passk_samples=None) -> list[dict]:
    """Greedy (`<prefix>`) + Pass@K (`<prefix>_pass<K>`, pass_rows) rows of a reasoning policy bundle on the
    sub-subset; think_tokens overrides the bundle's CoT budget; extra_rows adds the policy in direct mode and the
    Rechead fed its greedy CoT (`rechead_cot_policy`); cot_row: that Rechead row alone, under this name;
    samples / passk_samples: other seeded subsets than the run's reasoning and Pass@K ones."""
    args, samples = bench.args, bench.reasoning if samples is None else samples
    bundle = Path(bundle or args.reasoning_policy)
    version = read_manifest(bundle)["bundle_version"]
    policy = f"{bundle} ({version})"
    rows = [bundle_row(bench, f"{prefix}_direct", bundle, samples, "the reasoning policy in direct mode, beam 20")
            ] if extra_rows else []
    budget = {} if think_tokens is None else {"think": think_tokens}  # old keys stay valid without an override
    state: dict = {}

    def recommender():
        if "rec" not in state:
            state["rec"] = with_think_budget(load_recommender(bundle, "cpu", mode="reasoning"), think_tokens)
        return state["rec"]

    def decode(n_cots: int, temperature: float, samples=samples) -> tuple[list, float]:
        tag = "" if prefix == "reasoning_sft" else f"{prefix}_"
        path = OUT / f"decode_{tag}n{n_cots}_t{temperature}.jsonl"
        key = bench.key("decode", samples, bundle_version=version, n=n_cots, t=temperature, top_p=args.top_p,
                        batch_rows=args.batch_rows, **budget)
        meta = path.with_suffix(".key.json")
        if path.is_file() and meta.is_file() and json.loads(meta.read_text())["key"] == key:
            return [json.loads(line) for line in path.read_text().splitlines()], json.loads(meta.read_text())["s"]
        started = time.time()
        decoded = decode_reasoning(recommender(), samples, n_cots, temperature, args.top_p, k=20,
                                   batch_rows=args.batch_rows, seed=args.seed)
        seconds = round(time.time() - started, 1)
        rows_ = [{"sample_id": d.sample_id, "thoughts": list(d.thoughts), "closed": list(d.closed),
                  "beams": [list(map(list, b)) for b in d.beams]} for d in decoded]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows_))
        meta.write_text(json.dumps({"key": key, "s": seconds}))
        return rows_, seconds

    targets = [s.target for s in samples]
    passk_samples = bench.passk if passk_samples is None else passk_samples
    passk_targets = [s.target for s in passk_samples]
    greedy_key = bench.key(prefix, samples, bundle_version=version, batch_rows=args.batch_rows, **budget)

    def greedy_row() -> dict:
        decoded, seconds = decode(1, 0.0)
        (ranked, hits), = passk_rankings([d["beams"] for d in decoded], targets, [1], 20).values()
        closed = [c for d in decoded for c in d["closed"]]
        row = bench.evaluate_row(prefix, FixedRankings(
            {s.sample_id: r for s, r in zip(samples, ranked, strict=True)}, prefix), samples,
            {"decode": seconds}, f"{policy}; greedy CoT (max {recommender().settings.max_think_tokens} tokens) then "
                                 "trie beam 20 after <answer>")
        row["metrics"].update({"pass@1": sum(hits) / len(hits), "closed_rate": sum(closed) / len(closed)})
        return row

    rows.append(cached(bench, prefix, greedy_key, greedy_row))
    max_k = max(args.pass_k)
    for K in args.pass_k if pass_rows else ():
        name = f"{prefix}_pass{K}"

        def build(K=K, name=name) -> dict:
            decoded, seconds = decode(max_k, args.temperature, passk_samples)
            (ranked, hits), = passk_rankings([d["beams"] for d in decoded], passk_targets, [K], 20).values()
            closed = [c for d in decoded for c in d["closed"][:K]]
            row = bench.evaluate_row(name, FixedRankings(
                {s.sample_id: r for s, r in zip(passk_samples, ranked, strict=True)}, name), passk_samples,
                {"decode_all_k": seconds},
                f"{policy}; GREAM Pass@{K}: first {K} of {max_k} CoTs (max {recommender().settings.max_think_tokens}"
                f" tokens) sampled at temperature {args.temperature}, top-p {args.top_p} (seed {args.seed}); "
                "ranking = passk.rank_union of their answer beams")
            row["metrics"].update({f"pass@{K}": sum(hits) / len(hits), "closed_rate": sum(closed) / len(closed)})
            return row

        rows.append(cached(bench, name, bench.key(name, passk_samples, bundle_version=version, K=K, max_k=max_k,
                                                   t=args.temperature, top_p=args.top_p,
                                                   batch_rows=args.batch_rows, **budget), build))
    if extra_rows and not args.skip_policy_cot:
        rows.append(policy_cot_row(bench, decode, version))
    if cot_row:
        rows.append(policy_cot_row(bench, decode, version, cot_row, bundle, budget, samples))
    return rows


def with_think_budget(recommender, think_tokens: int | None):
    """The same reasoning recommender with another CoT budget (None: unchanged)."""
    if think_tokens is None or think_tokens == recommender.settings.max_think_tokens:
        return recommender
    from dataclasses import replace

    return type(recommender)(recommender.model, recommender.tokenizer, recommender.scheme, recommender.catalog,
                             replace(recommender.settings, max_think_tokens=think_tokens), recommender.name)


def srpo_rows(bench: Bench) -> list[dict]:
    """GREAM reasoning RL (issue 12): the SRPO bundle and its SFT start at the same CoT budget (the SRPO bundle's)."""
    bundle = Path(bench.args.srpo_policy)
    budget = read_manifest(bundle)["generation"]["reasoning"]["max_think_tokens"]
    samples = bench.samples  # a 64-token CoT decodes fast: every test sample of the run, and more Pass@K samples
    passk = select_subset(samples, bench.args.srpo_passk_samples, bench.args.seed)
    rows = (reasoning_rows(bench, "gream_sft_start", Path(bench.args.reasoning_policy), budget, extra_rows=False,
                           samples=samples, passk_samples=passk)
            + reasoning_rows(bench, "gream_srpo", bundle, budget, extra_rows=False, samples=samples,
                             passk_samples=passk))
    if bench.args.srpo_all_samples:  # the greedy pair again on every test sample: a narrower paired interval
        every = list(bench.split.test)
        rows += (reasoning_rows(bench, "gream_sft_start_all", Path(bench.args.reasoning_policy), budget,
                                extra_rows=False, pass_rows=False, samples=every)
                 + reasoning_rows(bench, "gream_srpo_all", bundle, budget, extra_rows=False, pass_rows=False,
                                  samples=every))
    training = read_manifest(bundle)["model"].get("training", {})
    if training.get("steps_run"):
        for row in (r for r in rows if r["name"].startswith("gream_srpo")):
            row["seconds"].update(train=round(training["seconds"], 1),
                                  per_step=round(training["seconds"] / training["steps_run"], 2))
    return rows


def stage2_rows(bench: Bench) -> list[dict]:
    """RPORec (issue 9 (b)): the Rechead fed the CoTs of the stage-II policy vs of its start (stage I's policy), at
    the stage-II bundle's CoT budget, with the greedy reasoning rows of both."""
    bundle = Path(bench.args.stage2_policy)
    budget = read_manifest(bundle)["generation"]["reasoning"]["max_think_tokens"]
    return (reasoning_rows(bench, "rporec_stage1_policy", Path(bench.args.reasoning_policy), budget,
                           extra_rows=False, pass_rows=False, cot_row="rechead_cot_stage1", samples=bench.samples)
            + reasoning_rows(bench, "rporec_stage2_policy", bundle, budget, extra_rows=False, pass_rows=False,
                             cot_row="rechead_cot_stage2", samples=bench.samples))


def policy_cot_row(bench: Bench, decode, policy_version: str, name: str = "rechead_cot_policy",
                   policy: Path | None = None, budget: dict | None = None, samples=None) -> dict:
    """`rechead_cot`'s model fed the policy's greedy CoT + its best unseen answer (the nearline cache's content)."""
    from training.reasoning.rechead_recommender import RecheadRecommender

    samples, bundle = bench.reasoning if samples is None else samples, Path(bench.args.rechead_cot)
    policy = policy or Path(bench.args.reasoning_policy)
    version = read_manifest(bundle)["bundle_version"]

    def build() -> dict:
        decoded, seconds = decode(1, 0.0)
        history = {s.sample_id: s.history for s in samples}
        cots = {d["sample_id"]: (d["thoughts"][0], first_unseen(d["beams"][0], history[d["sample_id"]]))
                for d in decoded}
        base = load_recommender(bundle, "cpu")
        featurizer = PolicyCotFeaturizer(base.featurizer, cots)
        rec = RecheadRecommender(base.model, base.catalog, featurizer, name=name, item_matrix=base.item_matrix)
        started = time.time()
        featurizer.warm(samples, cache_dir=bench.cache)
        row = bench.evaluate_row(name, rec, samples, {"decode": seconds, "encode": round(time.time() - started, 1)},
                                 f"{bundle} ({version}) fed {policy} ({policy_version})'s greedy "
                                 "CoT and its best answer outside the history (nearline's answer)")
        row["metrics"]["answer_parsed_rate"] = sum(a is not None for _, a in cots.values()) / len(cots)
        return row

    key = bench.key(name, samples, bundle_version=version, policy=policy_version,
                    batch_rows=bench.args.batch_rows, **(budget or {}))
    return cached(bench, name, key, build)


def add_intervals(rows: list[dict], out: Path = OUT) -> None:
    """ci95 of NDCG@10(row) - NDCG@10(sft) on the row's samples, plus the targets' other comparisons."""
    by_name = {r["name"]: r for r in rows}
    pairs = [(r["name"], REFERENCE) for r in rows if r["name"] != REFERENCE and not r["name"].endswith("_all")]
    pairs += [("rechead_cot", "rechead_history"), ("rechead_cot_policy", "rechead_history"),
              ("rechead_cot_policy", "rechead_cot"), ("reasoning_sft", "reasoning_sft_direct"),
              ("reasoning_sft_pass1", "reasoning_sft_direct"), ("gream_srpo", "gream_sft_start"),
              ("gream_srpo_all", "gream_sft_start_all"),
              *((f"gream_srpo_pass{k}", f"gream_sft_start_pass{k}") for k in (1, 5, 10)),
              ("rechead_cot_stage2", "rechead_cot_stage1"), ("rechead_cot_stage2", "rechead_history"),
              ("rporec_stage2_policy", "rporec_stage1_policy")]
    for name, ref in pairs:
        if name not in by_name or ref not in by_name:
            continue
        row, reference = by_name[name], by_name[ref]
        ref_path = Path(reference["predictions"])
        ref_ndcg = reference["metrics"]["ndcg@10"]
        if row["metrics"]["n_samples"] < reference["metrics"]["n_samples"]:  # cut the reference to the sub-subset
            ids = [json.loads(line)["sample_id"] for line in Path(row["predictions"]).read_text().splitlines()]
            ref_path = restrict_predictions(ref_path, ids, out / ref / f"predictions_{len(ids)}.jsonl")
            from benchmarks.common import per_sample_ndcg

            values = per_sample_ndcg(ref_path)[1]
            ref_ndcg = sum(values) / len(values)
        ci = paired_interval(Path(row["predictions"]), ref_path)
        entry = {"reference": ref, "n_samples": row["metrics"]["n_samples"], "reference_ndcg@10": ref_ndcg,
                 "mean_diff": ci["mean_diff"], "ci95": [round(ci["lo"], 4), round(ci["hi"], 4)]}
        row.setdefault("comparisons", []).append(entry)
        if ref == REFERENCE:
            row["ci95"] = {"ndcg@10": entry["ci95"]}
            row["notes"] += (f"; ci95: NDCG@10 difference to {REFERENCE} on these {entry['n_samples']} samples "
                             f"({REFERENCE} there: {ref_ndcg:.4f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000, help="seeded test subset for every row")
    parser.add_argument("--reasoning-samples", type=int, default=200,
                        help="seeded sub-subset for the rows that decode CoTs (0 = all of --samples)")
    parser.add_argument("--passk-samples", type=int, default=0,
                        help="seeded sub-subset of the reasoning samples for the Pass@K rows (0 = all of them)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sft", default="runs/sft-temporal-577c7bc1/bundle")
    parser.add_argument("--sft-atomic", default="runs/sft_atomic-temporal-22a38e57/bundle")
    parser.add_argument("--sasrec", default="runs/sasrec-h128-d0.2-s0-ml-100k-temporal/bundle")
    parser.add_argument("--rechead-history", default="runs/rechead_none-ml-100k-temporal/bundle")
    parser.add_argument("--rechead-cot", default="runs/rechead_programmatic-ml-100k-temporal/bundle")
    parser.add_argument("--reasoning-policy", default="runs/sft_reasoning/bundle")
    parser.add_argument("--pass-k", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--batch-rows", type=int, default=64, help="CoT rows decoded per forward batch")
    parser.add_argument("--skip-reasoning", action="store_true", help="only the direct and Rechead rows")
    parser.add_argument("--skip-policy-cot", action="store_true", help="leave out rechead_cot_policy")
    parser.add_argument("--srpo-passk-samples", type=int, default=300,
                        help="seeded subset of --samples for the gream_* Pass@K rows (their greedy rows use all)")
    parser.add_argument("--stage2-policy", default=None,
                        help="an RPORec stage-II bundle (`reasonrec train rl --config rporec`): adds the Rechead fed "
                             "its CoTs (rechead_cot_stage2) and fed its start's CoTs at the same budget (stage 1)")
    parser.add_argument("--srpo-policy", default=None,
                        help="a GREAM reasoning-SRPO bundle (`reasonrec train rl --config gream_reasoning`): adds "
                             "gream_sft_start* (the --reasoning-policy at its CoT budget) and gream_srpo* rows")
    parser.add_argument("--srpo-all-samples", action="store_true",
                        help="also the greedy gream_srpo / gream_sft_start pair on every test sample")
    parser.add_argument("--out-dir", type=Path, default=Path("reports"))
    parser.add_argument("overrides", nargs="*", help="config overrides (data.*, eval.beam_width, ...)")
    args = parser.parse_args()
    if args.reasoning_samples <= 0:
        args.reasoning_samples = args.samples
    bench = Bench(args)
    samples = bench.samples
    rows = [bundle_row(bench, "sft", Path(args.sft), samples, "direct mode (SID), trie beam 20"),
            bundle_row(bench, "sft_atomic", Path(args.sft_atomic), samples, "direct mode (atomic ids), beam 20"),
            bundle_row(bench, "sasrec", Path(args.sasrec), samples, "hidden 128, dropout 0.2, seed 0")]
    rows += [bundle_row(bench, "rechead_history", Path(args.rechead_history), samples,
                        "cot=none (history only), otherwise the settings of rechead_cot: dim 64, 1 layer, 100 sampled "
                        "negatives, 5,000 train / 2,000 valid samples, seed 0; trained by `reasonrec train rechead "
                        "rechead.cot=none eval.test_samples=1000`"),
             bundle_row(bench, "rechead_cot", Path(args.rechead_cot), samples,
                        "programmatic teacher CoT written from the history alone")]
    rows += [] if args.skip_reasoning else reasoning_rows(bench)
    rows += srpo_rows(bench) if args.srpo_policy and not args.skip_reasoning else []
    rows += stage2_rows(bench) if args.stage2_policy and not args.skip_reasoning else []
    add_intervals(rows)
    command = "python -m " + " ".join(["benchmarks.reasoning", *sys.argv[1:]])
    commit = git_commit()
    for row in rows:
        row.update(command=command, git_commit=commit)
    rows += [dict(r, dataset=bench.cfg.data.dataset, protocol="temporal", metrics={}) for r in not_run(rows)]
    plot = plot_differences(rows, args.out_dir / "reasoning_ci.png")
    write_report("reasoning", rows, command, out_dir=args.out_dir,
                 notes_md=notes_markdown(rows, bench, plot, decode_stats(bench)))


def decode_stats(bench: Bench) -> list[dict]:
    """Per decode file of this run: samples, CoTs per sample, mean CoT tokens (word-level pieces), seconds, how
    many distinct answers the CoTs gave and the share of answers that repeat a history item."""
    history = {s.sample_id: set(s.history) for s in bench.samples}
    stats = []
    for path in sorted(OUT.glob("decode_*.jsonl")):
        meta = json.loads(path.with_suffix(".key.json").read_text())
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        if any(r["sample_id"] not in history for r in rows):
            continue  # a decode of another subset
        tokens = [len(t.split()) for r in rows for t in r["thoughts"]]
        answers = [(r["sample_id"], b[0][0]) for r in rows for b in r["beams"] if b]
        stats.append({"file": path.name, "samples": len(rows), "n_cots": meta["key"]["n"],
                      "distinct_answers": len({a for _, a in answers}),
                      "answers_in_history": sum(a in history[i] for i, a in answers) / max(len(answers), 1),
                      "temperature": meta["key"]["t"], "mean_tokens": sum(tokens) / max(len(tokens), 1),
                      "seconds": meta["s"], "tokens_per_s": sum(tokens) / max(meta["s"], 1e-9)})
    return stats


if __name__ == "__main__":
    main()
