"""A/B readout check on simulated traffic with a known ground truth: the better arm must win, SRM must pass at
the configured weights, and a deliberately broken split must fail SRM. Exit code 0 when every check passes.

    python -m loadtests.ab_simulation                                    # synthetic world, ~10 s
    python -m loadtests.ab_simulation --split data/splits/ml-100k-temporal --users 4000
    python -m loadtests.ab_simulation --url http://127.0.0.1:8000 --split data/splits/ml-100k-temporal \
        --log runs/serve/feedback.jsonl                                  # drive a running service (healthy only)

Offline (default): loadtests/ab_traffic.py writes two feedback logs in --work-dir with the real JSONL log
class, users assigned by the real ArmAssigner: `feedback_healthy.jsonl` under the configured weights and
`feedback_broken.jsonl` under --broken-weights (60/40 by default); the readout (serving/abtest) reads each
against the config. The control (first arm) shows the popularity list, the other arm a better list.
Checks: healthy lift of the better arm with its intervals (delta method; the user bootstrap unless
--bootstrap 0) above 0; healthy
SRM p >= alpha; broken SRM p < alpha. Reports: <work-dir>/readout_{healthy,broken}.{md,json,png} and the
summary <out>.{md,json} (rows `ab_healthy`, `ab_broken_split` with a verdict).

--url: users of the split's test part (they need histories in the service's store) are sent to
POST /v1/recommend without the arm header, exposures and clicks go to POST /v1/feedback, then the readout
reads --log (default: the config's feedback_log) from the start of the run on. Which arm is better is not
known there, so only the SRM check is judged.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from loadtests.ab_traffic import Traffic, World, synthetic_world, world_from_split, write_log, write_next_log
from serving.abtest.events import normalise_rows, read_rows
from serving.abtest.readout import Readout, ReadoutOptions, build_readout, experiment_of
from serving.abtest.replay import read_next_items
from serving.abtest.report import write_readout
from serving.settings import ExperimentSettings, ServeSettings
from training.catalog import id_sort_key
from training.eval.report import write_report


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=Path("deploy/serve.yaml"), help="serve config (weights)")
    p.add_argument("--experiment", default=None, help="experiment name (default: the config's first)")
    p.add_argument("--split", type=Path, default=None, help="split folder for the ground truth (default: synthetic)")
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--quality", type=float, default=0.3, help="share of the better list from the user's next items")
    p.add_argument("--click-prob", type=float, default=0.9)
    p.add_argument("--noise", type=float, default=0.01, help="click probability of any other exposed item")
    p.add_argument("--broken-weights", default="60,40", help="traffic weights of the broken split")
    p.add_argument("--srm-alpha", type=float, default=0.001)
    p.add_argument("--bootstrap", type=int, default=200, help="user-bootstrap resamples of the lift")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work-dir", type=Path, default=Path("runs/ab_sim"))
    p.add_argument("--out", type=Path, default=Path("reports/ab_simulation"))
    p.add_argument("--url", default=None, help="drive this running service instead of writing logs")
    p.add_argument("--log", action="append", default=None, help="--url: the service's feedback log(s)")
    return p.parse_args(argv)


def load_world(args: argparse.Namespace) -> World:
    return world_from_split(args.split) if args.split else synthetic_world(seed=args.seed)


def readout_of(sources: list, experiment: ExperimentSettings, args: argparse.Namespace, next_log: Path | None,
               since: float | None = None) -> Readout:
    events, dropped = normalise_rows(read_rows(sources))
    if since is not None:
        events = [e for e in events if e.ts >= since]
    options = ReadoutOptions(srm_alpha=args.srm_alpha, bootstrap=args.bootstrap, seed=args.seed, ks=(args.k,))
    return build_readout(events, experiment, options, read_next_items(next_log) if next_log else None, dropped)


def healthy_row(readout: Readout, args: argparse.Namespace) -> dict:
    """Better arm (the second) vs control: lift with both intervals above 0, SRM passing."""
    control, better = readout.arms[0], readout.arms[1]
    lift, boot = better.lift, better.lift_bootstrap
    wins = lift.lo > 0 and (boot is None or boot[0] > 0)  # nan compares False: an undefined interval loses
    srm_ok = readout.srm is not None and readout.srm.passed
    verdict = "pass" if wins and srm_ok else "FAIL"
    metrics = {"ctr_control": control.ctr, "ctr_better": better.ctr, "lift": lift.lift,
               "srm_chi2": readout.srm.chi2, "srm_p": readout.srm.p_value, "users": control.users + better.users}
    for name in (f"hr@{args.k}", f"ndcg@{args.k}"):
        if name in control.replay:
            metrics |= {f"{name}_control": control.replay[name], f"{name}_better": better.replay[name]}
    return {"name": "ab_healthy", "dataset": str(args.split) if args.split else "synthetic", "protocol": None,
            "metrics": metrics, "ci95": {"lift": [lift.lo, lift.hi]} | ({"lift_bootstrap": list(boot)} if boot else {}),
            "verdict": verdict.lower(),
            "notes": f"{verdict}: better arm {better.name} vs control {control.name}: lift interval above 0 "
                     f"{'yes' if wins else 'NO'}; SRM at the configured weights {'passes' if srm_ok else 'FAILS'}"}


def broken_row(readout: Readout, args: argparse.Namespace) -> dict:
    srm = readout.srm
    share = srm.counts[readout.arms[0].name] / sum(srm.counts.values())
    verdict = "pass" if not srm.passed else "FAIL"
    return {"name": "ab_broken_split", "dataset": str(args.split) if args.split else "synthetic", "protocol": None,
            "metrics": {"srm_chi2": srm.chi2, "srm_p": srm.p_value, "share_first_arm": share,
                        "users": sum(srm.counts.values())},
            "verdict": verdict.lower(),
            "notes": f"{verdict}: traffic {args.broken_weights} against the configured weights: SRM must fail "
                     f"(p < {args.srm_alpha:g})"}


def run_offline(args: argparse.Namespace, experiment: ExperimentSettings) -> list[dict]:
    world, work = load_world(args), args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    traffic = Traffic(args.users, args.k, args.quality, args.click_prob, args.noise, args.seed)
    configured = [a.weight for a in experiment.arms]
    broken = [float(w) for w in args.broken_weights.split(",")]
    healthy_log, broken_log = work / "feedback_healthy.jsonl", work / "feedback_broken.jsonl"
    write_log(world, experiment, configured, traffic, healthy_log)
    write_log(world, experiment, broken, traffic, broken_log)
    next_log = write_next_log(world, args.users, work / "next_items.jsonl")
    command = args.command
    healthy = readout_of([healthy_log], experiment, args, next_log)
    broken_readout = readout_of([broken_log], experiment, args, None)
    write_readout(healthy, work / "readout_healthy", command)
    write_readout(broken_readout, work / "readout_broken", command)
    return [healthy_row(healthy, args), broken_row(broken_readout, args)]


def drive_service(client, world: World, users: Sequence[str], k: int, traffic: Traffic) -> int:
    """POST /v1/recommend (no arm header) then /v1/feedback (exposures, clicks) per user; returns requests."""
    import random

    rng = random.Random(traffic.seed)
    for user in users:
        response = client.post("/v1/recommend", json={"user_id": user, "k": k})
        response.raise_for_status()
        body = response.json()
        truth, now = set(world.next_items[user]), time.time()
        events = [{"user_id": user, "item_id": it["item_id"], "event": "exposure", "request_id": body["request_id"],
                   "arm": body["arm"], "ts": now} for it in body["items"]]
        events += [e | {"event": "click", "ts": now + 0.001} for e in events if rng.random() < (
            traffic.click_prob if e["item_id"] in truth else traffic.noise)]
        client.post("/v1/feedback", json=events).raise_for_status()
    return len(users)


def run_service(args: argparse.Namespace, experiment: ExperimentSettings, settings: ServeSettings,
                client=None) -> list[dict]:
    import httpx

    world, started = load_world(args), time.time()
    users = sorted(world.next_items, key=id_sort_key)[: args.users]
    traffic = Traffic(args.users, args.k, args.quality, args.click_prob, args.noise, args.seed)
    with client or httpx.Client(base_url=args.url, timeout=30.0) as http:
        drive_service(http, world, users, args.k, traffic)
    readout = readout_of(args.log or [settings.feedback_log], experiment, args, None, since=started)
    write_readout(readout, args.work_dir / "readout_service", args.command)
    srm = readout.srm
    return [{"name": "ab_service", "dataset": str(args.split), "protocol": None,
             "metrics": {"srm_chi2": srm.chi2, "srm_p": srm.p_value, "users": sum(srm.counts.values())} |
             {f"ctr_{a.name}": a.ctr for a in readout.arms},
             "verdict": "pass" if srm.passed else "fail",
             "notes": f"{'pass' if srm.passed else 'FAIL'}: SRM of the users of the split's test part, served"}]


def print_rows(rows: list[dict]) -> None:
    for row in rows:
        numbers = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row["metrics"].items())
        intervals = "".join(f", {k} [{lo:+.3f}, {hi:+.3f}]" for k, (lo, hi) in row.get("ci95", {}).items())
        print(f"{row['name']}: {row['verdict'].upper()} - {numbers}{intervals}")
        print(f"    {row['notes']}")


def main(argv: Sequence[str] | None = None, client=None) -> int:
    args = parse_args(argv)
    args.command = shlex.join(["python", "-m", "loadtests.ab_simulation", *(sys.argv[1:] if argv is None else argv)])
    settings = ServeSettings.from_yaml(args.config)
    experiment = experiment_of(settings, args.experiment) if args.experiment else settings.experiments[0]
    if len(experiment.arms) < 2:
        print(f"experiment {experiment.name!r} needs two arms", file=sys.stderr)
        return 2
    rows = run_service(args, experiment, settings, client) if args.url or client else run_offline(args, experiment)
    print_rows(rows)
    write_report(args.out.name, rows, args.command, args.out.parent, plot_metric=None)
    return 0 if all(r["verdict"] == "pass" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
