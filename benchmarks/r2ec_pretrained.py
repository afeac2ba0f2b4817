"""R²ec on a pretrained base (SmolLM2-135M-Instruct): RecPO vs its "w/o reasoning" control, and the ranking step.

    python -m benchmarks.r2ec_pretrained --device cuda          # the SmolLM2 folder of `reasonrec models fetch`

The rows that test the paper's idea (r2ec.txt §5.3): both start from the pretrained instruct model with no
reasoning SFT, as the paper trains; LoRA (r = 4, peft) on every decoder linear layer plus the rows of our new
tokens; titles in the prompt (identifiers.scheme=titles, `r2ec.prompt_style=text`), item table from each item's
text. `r2ec_no_reasoning` reads history + `<answer>` (in-batch contrastive loss), `r2ec_recpo` samples G
reasonings per user and trains with RecPO. Both are scored by the one evaluator on the same seeded test subset,
seen items filtered, with a paired bootstrap over users of their NDCG@10 difference. Speed rows on the trained
r2ec_recpo backbone, one request at a time: the ranking step vs trie beam search at width 20 over title tokens on
the same weights, and the greedy reasoning decode before it. The rows go to `<out-dir>/r2ec_pretrained.{md,json}`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from benchmarks.common import paired_interval
from benchmarks.r2ec import quality_row, speed_rows
from training.config import load_config
from training.devices import resolve_device
from training.eval.report import markdown_table, write_report
from training.models.smollm2 import smollm2_dir
from training.pipeline import prepare_data
from training.reasoning.r2ec_bundle import train_r2ec_bundle

ROWS = (("r2ec_no_reasoning", False), ("r2ec_recpo", True))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-model", type=Path, default=None, help="HF causal LM folder (default: SmolLM2's)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=60, help="RecPO steps")
    parser.add_argument("--control-steps", type=int, default=150, help="steps of the w/o-reasoning control")
    parser.add_argument("--prompts-per-step", type=int, default=24)
    parser.add_argument("--max-think-tokens", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--lora-rank", type=int, default=4)
    parser.add_argument("--valid-samples", type=int, default=200)
    parser.add_argument("--eval-every", type=int, default=20)
    parser.add_argument("--test-samples", type=int, default=1000)
    parser.add_argument("--speed-samples", type=int, default=30)
    parser.add_argument("--where", default=None, help="machine phrase for the notes (default: what torch sees)")
    parser.add_argument("--runs-dir", default="runs/r2ec_pretrained")
    parser.add_argument("--out-dir", type=Path, default=Path("reports"))
    return parser.parse_args(argv)


def row_config(args: argparse.Namespace, name: str, reasoning: bool):
    steps = args.steps if reasoning else args.control_steps
    return load_config("r2ec", [
        f"runs_dir={args.runs_dir}", f"device={args.device}", f"eval.test_samples={args.test_samples}",
        "eval.filter_seen=true", f"policy.base_model={args.base_model}", "identifiers.scheme=titles",
        f"r2ec.name={name}", f"r2ec.reasoning={str(reasoning).lower()}", f"r2ec.steps={steps}",
        f"r2ec.prompts_per_step={args.prompts_per_step}", f"r2ec.max_think_tokens={args.max_think_tokens}",
        f"r2ec.lr={args.lr}", "r2ec.warmup_steps=5", "r2ec.item_prompt=text", "r2ec.prompt_style=text",
        f"r2ec.lora_rank={args.lora_rank}", f"r2ec.lora_alpha={2 * args.lora_rank}",
        f"r2ec.valid_samples={args.valid_samples}", f"r2ec.eval_every={args.eval_every}",
        f"r2ec.refresh_every={args.eval_every}", "r2ec.patience=2"])


def machine_phrase(device: str) -> str:
    if device == "cuda":
        return f"on {torch.cuda.get_device_name(0)}, fp32 (TF32 matmuls)"
    return f"on CPU, torch threads {torch.get_num_threads()}"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.base_model = args.base_model or smollm2_dir()
    device = resolve_device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = True
    where = args.where or machine_phrase(device)
    catalog, split = prepare_data(row_config(args, ROWS[0][0], False))
    rows, predictions = [], {}
    for name, reasoning in ROWS:
        cfg = row_config(args, name, reasoning)
        bundle, _ = train_r2ec_bundle(cfg, catalog, split, device=device)
        steps = args.steps if reasoning else args.control_steps
        setting = (f"{Path(args.base_model).name} base, LoRA r {args.lora_rank} + new-token rows, up to {steps} "
                   f"steps x {args.prompts_per_step} users, lr {args.lr}, warm-up 5, titles prompt, item text "
                   f"table, early stop on NDCG@10 of {args.valid_samples} valid samples every {args.eval_every} "
                   f"steps; ran {where}")
        extra = (f"G {cfg.r2ec.group_size}, T {cfg.r2ec.temperature}, top-k {cfg.r2ec.top_k}, max_think_tokens "
                 f"{args.max_think_tokens}, greedy reasoning at test" if reasoning
                 else "history + <answer>, in-batch contrastive loss")
        row, predictions[name] = quality_row(f"{name}_smollm2", cfg, bundle, catalog, split, f"{setting}; {extra}")
        rows.append(row)
        _save(rows, args)
    ci = paired_interval(predictions["r2ec_recpo"], predictions["r2ec_no_reasoning"])
    rows[-1]["ci95"] = {"ndcg@10": [ci["lo"], ci["hi"]]}
    rows[-1]["metrics"]["ndcg@10_diff"] = ci["mean_diff"]
    rows[-1]["notes"] += "; ci95: paired bootstrap over users vs r2ec_no_reasoning_smollm2"
    _save(rows, args)
    bundle = Path(args.runs_dir) / "r2ec_recpo-ml-100k-temporal" / "bundle"
    for row in speed_rows(bundle, split, args.speed_samples, device, where):
        rows.append({**row, "name": f"{row['name']}_smollm2"})
    _save(rows, args)
    print(json.dumps(rows, indent=1)[:4000])


def _save(rows: list[dict], args: argparse.Namespace) -> None:
    """Write the report after every row, so a run cut short keeps what it measured."""
    command = "python -m " + " ".join(["benchmarks.r2ec_pretrained", *sys.argv[1:]])
    write_report("r2ec_pretrained", rows, command, out_dir=args.out_dir, notes_md=notes_markdown(rows, args),
                 plot_metric=None)


def notes_markdown(rows: list[dict], args: argparse.Namespace) -> str:
    """Targets of issue 12 judged from the rows present (a partial run says what it lacks)."""
    by = {r["name"]: r for r in rows}
    lines = ["## Targets (issue 12, pretrained base)"]
    recpo = by.get("r2ec_recpo_smollm2", {})
    if "ci95" in recpo:
        (lo, hi), diff = recpo["ci95"]["ndcg@10"], recpo["metrics"]["ndcg@10_diff"]
        lines.append(f"- RecPO beats its no-reasoning control with the 95 % interval clear of zero: "
                     f"**{'met' if lo > 0 else 'not met'}** (NDCG@10 difference {diff:+.4f}, "
                     f"CI [{lo:+.4f}, {hi:+.4f}]).")
    else:
        lines.append("- RecPO vs control: not measured in this run.")
    step = by.get("r2ec_rank_step_smollm2")
    if step:
        beam = by["trie_beam20_smollm2"]["metrics"]["ms_per_request"]
        decode = by["r2ec_reasoning_decode_smollm2"]["metrics"]
        ratio = step["metrics"]["ratio"]
        lines.append(f"- Ranking step >= 5x cheaper than trie beam search at width 20 on the same base: "
                     f"**{'met' if ratio >= 5 else 'not met'}** ({step['metrics']['ms_per_request']:.1f} ms vs "
                     f"{beam:.1f} ms, x{ratio:.1f}); the greedy reasoning before it costs "
                     f"{decode['ms_per_request']:.1f} ms ({decode['think_tokens']:.1f} tokens).")
        lines += ["", "## Speed rows (ms per request)",
                  markdown_table([r for r in rows if "ms_per_request" in r["metrics"]])]
    else:
        lines.append("- Speed rows: not measured in this run.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
