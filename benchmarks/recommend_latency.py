"""One-shot `reasonrec recommend` latency against its floor: importing torch and the transformers model classes.

    python -m benchmarks.recommend_latency --bundle runs/sft/bundle --user 1

Rows (median of --repeats fresh processes each): `floor` (python importing torch +
transformers' causal-LM, tokenizer and Qwen3 classes, what any one-shot command that runs
the model pays), `recommend_user` and `recommend_history` (the whole CLI command), and
`beyond_floor_user` / `beyond_floor_history`: in one process, the floor imported first,
then the CLI command timed alone. Run once with bytecode caching and once without
(PYTHONDONTWRITEBYTECODE=1, as on some CI machines), since imports dominate.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from training.eval.report import write_report

FLOOR = ("import torch\n"
         "from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast\n"
         "from transformers.models.qwen3 import modeling_qwen3\n")
IN_PROCESS = FLOOR + """
import sys, time
from training.cli import app
started = time.perf_counter()
try:
    app(sys.argv[1:], standalone_mode=False)
finally:
    print(f"BEYOND {time.perf_counter() - started:.4f}", file=sys.stderr)
"""


def timed(cmd: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def beyond(args: list[str], env: dict) -> float:
    out = subprocess.run([sys.executable, "-c", IN_PROCESS, *args], check=True, env=env, capture_output=True,
                         text=True)
    return float(out.stderr.rsplit("BEYOND ", 1)[1].split()[0])


def measure(bundle: str, user: str, history: str, repeats: int, bytecode: bool) -> list[dict]:
    env = {**os.environ}
    env.pop("PYTHONDONTWRITEBYTECODE", None) if bytecode else env.update(PYTHONDONTWRITEBYTECODE="1")
    cli = [sys.executable, "-m", "training.cli", "recommend", "--bundle", bundle]
    user_args = ["recommend", "--bundle", bundle, "--user", user, "--json"]
    history_args = ["recommend", "--bundle", bundle, "--history", history, "--json"]
    timed([sys.executable, "-c", FLOOR], env)  # warm the page cache (and .pyc files when caching)
    samples = {
        "floor": [timed([sys.executable, "-c", FLOOR], env) for _ in range(repeats)],
        "recommend_user": [timed([*cli, "--user", user], env) for _ in range(repeats)],
        "recommend_history": [timed([*cli, "--history", history], env) for _ in range(repeats)],
        "beyond_floor_user": [beyond(user_args, env) for _ in range(repeats)],
        "beyond_floor_history": [beyond(history_args, env) for _ in range(repeats)],
    }
    floor = statistics.median(samples["floor"])
    mode = "bytecode cached" if bytecode else "PYTHONDONTWRITEBYTECODE=1"
    rows = []
    for name, values in samples.items():
        median = statistics.median(values)
        metrics = {"median_s": round(median, 3), "min_s": round(min(values), 3), "max_s": round(max(values), 3)}
        if name.startswith("recommend"):
            metrics["ratio_vs_floor"] = round(median / floor, 2)
        rows.append({"name": f"{name}{'' if bytecode else '_nobytecode'}", "dataset": "ml-100k",
                     "protocol": "temporal", "metrics": metrics, "seconds": {"total": round(sum(values), 1)},
                     "notes": f"{mode}; median of {repeats} runs; bundle {bundle}; ratio = median / floor median"})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="runs/sft/bundle")
    parser.add_argument("--user", default="1")
    parser.add_argument("--history", default="50,172,181")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = [r for bytecode in (True, False) for r in measure(args.bundle, args.user, args.history, args.repeats,
                                                              bytecode)]
    write_report("recommend_latency", rows, "python -m " + " ".join(["benchmarks.recommend_latency", *sys.argv[1:]]),
                 plot_metric="median_s")


if __name__ == "__main__":
    main()
