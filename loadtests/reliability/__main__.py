"""The reliability report: every scenario at full length -> reports/reliability.md/.json (REPORTS.md shape).

    python -m loadtests.reliability                          # ~15 min on 2 cores (the soak alone is 5 min)
    python -m loadtests.reliability --only fuzz,redis_kill --out-dir /tmp/rep
    python -m loadtests.reliability --replica-single         # also the 1-replica variant of replica_kill

Everything runs on 127.0.0.1: a throwaway redis-server on a free port, the app under uvicorn (in this process
or a child), local Ray for `replica_kill`. Bundles are the tiny test bundles (tests/serving/bundles.py), written
under --workdir. Each row: what was injected, requests sent, responses by status, what was compared before and
after, the checks and the verdict. tests/reliability/ runs the same scenario functions, shorter.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from loadtests.reliability.harness import REPO_ROOT, Scenario, Stack, set_env

SCENARIOS = ("fuzz", "redis_kill", "nearline_kill", "bad_bundle", "feedback_restart", "overload", "soak",
             "replica_kill", "engine_replica_kill", "engine_replica_kill_single")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    p.add_argument("--out-dir", type=Path, default=REPO_ROOT / "reports")
    p.add_argument("--workdir", type=Path, default=None, help="default runs/reliability/<UTC time>")
    p.add_argument("--fuzz-examples", type=int, default=100, help="valid and invalid cases per operation")
    p.add_argument("--soak-seconds", type=float, default=300.0)
    p.add_argument("--overload-seconds", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--replica-single", action="store_true", help="also kill the only replica of a 1-replica app")
    p.add_argument("--merge", action="store_true",
                   help="keep the rows of the existing report that this run does not replace (e.g. with --only)")
    p.add_argument("--nearline-bundle", type=Path, default=None,
                   help="a reasoning policy bundle: nearline_kill on the real vLLM reasoner instead of the fake one")
    return p.parse_args(argv)


def run_all(args: argparse.Namespace, stack: Stack) -> list[Scenario]:
    from loadtests.reliability import faults, fuzz, load, nearline, replica

    reasoner = ["--reasoner", "vllm", "--bundle", str(args.nearline_bundle)] if args.nearline_bundle else None
    plan = {"fuzz": lambda: fuzz.run_fuzz(stack, examples=args.fuzz_examples, seed=args.seed),
            "redis_kill": lambda: faults.run_redis_kill(stack, phase_s=5.0),
            "nearline_kill": lambda: nearline.run_nearline_kill(stack, users=120, seed=args.seed,
                                                                reasoner=reasoner, timeout_s=900),
            "bad_bundle": lambda: faults.run_bad_bundle(stack),
            "feedback_restart": lambda: faults.run_feedback_restart(stack, ("SIGKILL", "SIGTERM"), n_events=2000),
            "overload": lambda: load.run_overload(stack, seconds=args.overload_seconds),
            "soak": lambda: load.run_soak(stack, seconds=args.soak_seconds),
            "replica_kill": lambda: replica.run_replica_kill(stack),
            "engine_replica_kill": lambda: replica.run_replica_kill(stack, replicas=2, target="engine"),
            "engine_replica_kill_single": lambda: replica.run_replica_kill(stack, replicas=1, target="engine")}
    if args.replica_single:
        plan["replica_kill_single"] = lambda: replica.run_replica_kill(stack, replicas=1)
    wanted = [name for name in [*SCENARIOS, "replica_kill_single"] if name in plan
              and (name in args.only.split(",") or name == "replica_kill_single")]
    results = []
    for name in wanted:
        print(f"[reliability] {name} ...", flush=True)
        try:
            result = plan[name]()
        except Exception as err:  # noqa: BLE001 - a scenario that crashed is a failed row, the others still run
            result = Scenario(name, injected="(the scenario crashed)", notes=f"{type(err).__name__}: {err}"[:500])
            result.check("the scenario ran to the end", False)
            traceback.print_exc()
        print(f"[reliability] {name}: {result.verdict} in {result.seconds:.0f} s {result.failed or ''}", flush=True)
        results.append(result)
    return results


def render_markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"# {report['benchmark']}",
             f"`{report['command']}` — commit `{report['git_commit']}`, {report['created_at']}, {m['cpu']} "
             f"({m['cores']} cores), GPU: {m['gpu'] or 'none'}. Everything on 127.0.0.1; tiny test bundles "
             "(tests/serving/bundles.py), real redis-server, native engine, Rechead + MiniLM.",
             "", "| scenario | verdict | injected | requests | responses by status | compared before/after | s |",
             "|---|---|---|---|---|---|---|"]
    for row in report["rows"]:
        statuses = ", ".join(f"{k}: {v}" for k, v in row["responses"].items())
        lines.append(f"| `{row['name']}` | **{row['verdict']}** | {row['injected']} | {row['requests']} | {statuses} "
                     f"| {row['compared']} | {row['seconds']['run']} |")
    lines += ["", "## Checks and measurements", ""]
    for row in report["rows"]:
        lines.append(f"### `{row['name']}` — {row['verdict']}")
        lines += [f"- {'pass' if ok else '**FAIL**'}: {name}" for name, ok in row["checks"].items()]
        lines.append(f"- metrics: `{json.dumps(row['metrics'], separators=(', ', ': '))}`")
        if row["notes"]:
            lines.append(f"- notes: {row['notes']}")
        lines.append("")
    notes = Path(__file__).with_name("notes.md")
    if notes.is_file():
        lines.append(notes.read_text().strip())
    return "\n".join(lines) + "\n"


def write_report(results: list[Scenario], out_dir: Path, command: str, merge: bool = False) -> tuple[Path, Path]:
    from training.eval.report import git_commit, machine_info, merge_rows

    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "reliability.json", out_dir / "reliability.md"
    rows = [r.row() for r in results]
    if merge:
        rows = merge_rows(json_path, rows, key=("name",))
    report = {"benchmark": "reliability", "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "command": command, "git_commit": git_commit(), "machine": machine_info(), "rows": rows}
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    md_path.write_text(render_markdown(report))
    return md_path, json_path


def main(argv=None) -> int:
    args = parse_args(argv)
    set_env()
    workdir = args.workdir or REPO_ROOT / "runs" / "reliability" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    start = time.monotonic()
    stack = Stack.create(workdir)
    try:
        results = run_all(args, stack)
    finally:
        stack.close()
    command = "python -m loadtests.reliability " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    md, js = write_report(results, args.out_dir, command.strip(), args.merge)
    print(f"[reliability] {len(results)} scenarios in {time.monotonic() - start:.0f} s -> {md}, {js}")
    return 0 if all(r.verdict == "pass" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
