"""Speed of the RL update's teacher-forced scoring (training/rollout/scoring.py) on one policy bundle: every
completion as its own prompt + completion sequence through transformers, vs one forward per distinct prompt with
its completions attending to the prompt's keys (`LeanQwen3.extend`).

    python -m benchmarks.rl_update_speed --bundle runs/sft-temporal-4a15052f/bundle

Inputs are an RL step's: 32 seeded test prompts, 16 trie-constrained samples each (a GRPO group), and SimPO's
pairs (the target against each distinct sampled item). Each row times log-probs + backward of a weighted sum,
median of `--repeats`; the report gives the ratio and the largest log-prob and gradient differences between the two.
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
from training.rollout.sampling import TrieSampler
from training.rollout.scoring import per_sequence_logprobs, shared_prompt_logprobs

SCORERS = {"per_sequence": per_sequence_logprobs, "shared_prompt": shared_prompt_logprobs}


def rl_batches(rec, samples, group: int, seed: int = 0) -> dict[str, tuple[list, list]]:
    """{"grpo_group": (prompts, completions), "simpo_pairs": (prompts, completions)} of one RL step."""
    prompts = [rec.prompt_ids(s) for s in samples]
    depth = rec.scheme.depth or max(len(path) for path in rec.item_ids.values())
    sampler = TrieSampler(rec.model.eval(), rec.trie, depth, rec.tokenizer.pad_token_id)
    groups = sampler.sample(prompts, group, generator=torch.Generator().manual_seed(seed))
    grpo = ([p for p, g in zip(prompts, groups, strict=True) for _ in g], [c.token_ids for g in groups for c in g])
    pair_prompts, pair_completions = [], []
    for prompt, sample, completions in zip(prompts, samples, groups, strict=True):
        wrong = {c.item: c.token_ids for c in completions if c.item != sample.target}
        for tokens in wrong.values():
            pair_prompts += [prompt, prompt]
            pair_completions += [rec.item_ids[sample.target], tokens]
    return {"grpo_group": grpo, "simpo_pairs": (pair_prompts, pair_completions)}


def time_scorer(model, scorer, prompts, completions, pad_id: int, repeats: int):
    """(median seconds of log-probs + backward, log-probs, gradients)."""
    times = []
    for _ in range(repeats):
        model.zero_grad()
        started = time.perf_counter()
        logprobs, mask = scorer(model, prompts, completions, pad_id)
        (logprobs * mask).sum().backward()
        times.append(time.perf_counter() - started)
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return statistics.median(times), logprobs.detach(), grads


def rows_for(name: str, model, prompts, completions, pad_id: int, repeats: int) -> list[dict]:
    timed = {scorer: time_scorer(model, fn, prompts, completions, pad_id, repeats) for scorer, fn in SCORERS.items()}
    (base_s, base_lp, base_g), (lean_s, lean_lp, lean_g) = timed["per_sequence"], timed["shared_prompt"]
    note = f"{len(completions)} completions of {len({tuple(p) for p in prompts})} prompts; log-probs + backward, " \
           f"median of {repeats}"
    rows = [{"name": f"{name}_{scorer}", "dataset": "ml-100k", "protocol": "temporal",
             "metrics": {"ms_per_step": 1000 * seconds}, "seconds": {"score": round(seconds, 3)}, "notes": note}
            for scorer, (seconds, _, _) in timed.items()]
    rows[1]["metrics"] |= {"ratio": base_s / lean_s, "max_abs_logprob_diff": float((base_lp - lean_lp).abs().max()),
                           "max_abs_grad_diff": float((base_g - lean_g).abs().max())}
    rows[1]["notes"] += "; ratio = per_sequence ms / this ms; diffs against per_sequence"
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--group", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    _, split = prepare_data(load_config("default"))
    rec = load_recommender(args.bundle, "cpu")
    rec.model.train()  # as in the RL update (the tiny policy has no dropout)
    batches = rl_batches(rec, select_subset(split.test, args.prompts, 0), args.group)
    pad_id = rec.tokenizer.pad_token_id
    rows = [row for name, (prompts, completions) in batches.items()
            for row in rows_for(name, rec.model, prompts, completions, pad_id, args.repeats)]
    notes = f"Policy: {args.bundle} ({rec.scheme.name} ids, depth {rec.scheme.depth}); one torch thread."
    write_report("rl_update_speed", rows, "python -m " + " ".join(["benchmarks.rl_update_speed", *sys.argv[1:]]),
                 notes_md=notes, plot_metric="ms_per_step")


if __name__ == "__main__":
    main()
