"""The serving benchmark's report: one row per measured run (`<scenario>_c<N>` over HTTP with the replica's,
proxy's and locust's CPU per request, `<scenario>_inprocess_c<N>`, and `<scenario>_ratio_c<N>` comparing the two
with the direct scenarios' verdict), the reasoning p99 verdicts, the latency plot (p50 bar, p99 tick, HTTP beside
in-process), and the markdown notes under the table (targets, set-up, the profile ladder, the --notes file),
written through training.eval.report. Pure functions of rows, facts and the parsed arguments: nothing here measures.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from loadtests.scenarios import ARMS, RATIO_TARGET, REASONING_P99_TARGET_MS, REPO_ROOT

# ---- rows -----------------------------------------------------------------------------------------------------------

def base_row(name: str, users: int) -> dict:
    return {"name": name, "dataset": "ml-100k", "protocol": "temporal", "metrics": {"users": users}}


def http_path(args: argparse.Namespace) -> str:
    """The HTTP path of the main runs (`--ingress`)."""
    if args.ingress == "direct":
        return "Ray Serve direct ingress (the replica's own port)"
    return "Ray Serve proxy -> ingress replica"


def rounds(args: argparse.Namespace) -> str:
    """"3 x " before a run's duration when --rounds 3 pooled three runs, else nothing."""
    return f"{args.rounds} x " if args.rounds > 1 else ""


def http_row(scenario: str, users: int, stats: dict, cpu: dict, args: argparse.Namespace,
             idle: float | None = None) -> dict:
    """idle: CPU cores the replica and proxy burn with no traffic (idle_cpu_ms_per_req: that share of
    cpu_ms_per_req)."""
    row = base_row(f"{scenario}_c{users}", users)
    n = max(stats["requests"], 1)
    row["metrics"].update(stats)
    row["metrics"].update(cpu_ms_per_req=round(1000 * (cpu["replica"] + cpu["proxy"]) / n, 2),
                          client_cpu_ms_per_req=round(1000 * cpu["locust"] / n, 2))
    if idle is not None:
        row["metrics"]["idle_cpu_ms_per_req"] = round(1000 * idle * cpu["wall"] / n, 2)
    row["seconds"] = {"run": round(cpu["wall"], 1)}
    row["notes"] = (f"HTTP POST /v1/recommend via {http_path(args)} (arm {ARMS[scenario]}), "
                    f"locust FastHttpUser x{users}, no think time, {rounds(args)}{args.duration:g} s, "
                    f"first {args.warmup:g} s "
                    f"out of latency/rps; server_* = the response's latency_ms (pipeline time); CPU/request: "
                    f"replica {1000 * cpu['replica'] / n:.2f} ms, proxy {1000 * cpu['proxy'] / n:.2f} ms, locust "
                    f"{1000 * cpu['locust'] / n:.2f} ms; machine busy {cpu['machine'] / cpu['wall']:.2f} of "
                    f"{os.cpu_count()} cores; loadavg {os.getloadavg()[0]:.2f}")
    return row


INPROCESS_WHAT = {
    "direct_native": "NativeDirectEngine.recommend_batch behind MicroBatcher (serve settings' batching)",
    "direct_vllm": "VLLMDirectEngine.recommend (AsyncLLM, a second engine in this process)",
    "reasoning_cached": "ReasoningService.recommend (Redis HMGET -> cached vector -> FAISS, in a thread)",
}


def inprocess_row(scenario: str, users: int, stats: dict, cpu: dict, failures: list[str],
                  args: argparse.Namespace) -> dict:
    row = base_row(f"{scenario}_inprocess_c{users}", users)
    n = max(stats["requests"], 1)
    row["metrics"].update(stats)
    row["metrics"]["cpu_ms_per_req"] = round(1000 * cpu["driver"] / n, 2)
    if "mean_batch" in cpu:
        row["metrics"]["mean_batch"] = cpu["mean_batch"]
    row["seconds"] = {"run": round(cpu["wall"], 1)}
    row["notes"] = (f"{INPROCESS_WHAT[scenario]}; {users} asyncio clients, "
                    f"{rounds(args)}{args.inprocess_duration:g} s, first "
                    f"{args.warmup:g} s out of latency/rps; same users, histories and k as HTTP; machine busy "
                    f"{cpu['machine'] / cpu['wall']:.2f} of {os.cpu_count()} cores; loadavg "
                    f"{os.getloadavg()[0]:.2f}" + (f"; first error: {failures[0]}" if failures else ""))
    return row


def ratio_row(scenario: str, users: int, http: dict, local: dict) -> dict:
    row = base_row(f"{scenario}_ratio_c{users}", users)
    h, i = http["metrics"], local["metrics"]
    m = row["metrics"]
    m.update(ratio=round(h["p50_ms"] / i["p50_ms"], 3), ratio_mean=round(h["mean_ms"] / i["mean_ms"], 3),
             ratio_p99=round(h["p99_ms"] / i["p99_ms"], 3), overhead_p50_ms=round(h["p50_ms"] - i["p50_ms"], 2),
             ratio_rps=round(h["rps"] / i["rps"], 3) if i.get("rps") else None)
    row["notes"] = (f"ratio = HTTP p50 / in-process p50 ({h['p50_ms']} / {i['p50_ms']} ms); ratio_mean = HTTP mean / "
                    f"in-process mean; ratio_p99 likewise; ratio_rps = HTTP rps / in-process rps; "
                    f"overhead_p50_ms = HTTP p50 - in-process p50")
    if scenario.startswith("direct") and users == 8:
        failed = max(h["error_rate"], i["error_rate"])
        row["verdict"] = "pass" if m["ratio"] <= RATIO_TARGET and not failed else "fail"
        row["notes"] += f"; target ratio <= {RATIO_TARGET} at 8 users"
        if failed:
            row["notes"] += (f" with no errors: {100 * h['error_rate']:.0f}% of HTTP and {100 * i['error_rate']:.0f}% "
                             f"of in-process requests failed, so the ratio compares time-outs")
    return row


def add_p99_verdicts(rows: list[dict]) -> None:
    """The reasoning_cached HTTP rows' verdict: p99 within REASONING_P99_TARGET_MS (in place)."""
    for row in rows:
        if row["name"].startswith("reasoning_cached_c"):
            row["verdict"] = "pass" if row["metrics"]["p99_ms"] <= REASONING_P99_TARGET_MS else "fail"
            row["notes"] += f"; target p99 <= {REASONING_P99_TARGET_MS:g} ms"


# ---- the report ---------------------------------------------------------------------------------------------------

def plot_latency(rows: list[dict], path: Path) -> Path | None:
    """p50 and p99 per scenario and concurrency, HTTP beside in-process (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    http = [r for r in rows if "_inprocess_" not in r["name"] and "_ratio_" not in r["name"]]
    if not http:
        return None
    by_name = {r["name"]: r for r in rows}
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(http)), 4))
    labels = []
    for x, row in enumerate(http):
        scenario, users = row["name"].rsplit("_c", 1)
        local = by_name.get(f"{scenario}_inprocess_c{users}")
        for offset, r, color, label in ((-0.2, row, "C0", "HTTP"), (0.2, local, "C1", "in-process")):
            if r is None or "p50_ms" not in r["metrics"]:
                continue
            ax.bar(x + offset, r["metrics"]["p50_ms"], 0.38, color=color, label=label if x == 0 else None)
            ax.plot([x + offset] * 2, [r["metrics"]["p50_ms"], r["metrics"]["p99_ms"]], color="k", lw=1)
            ax.plot(x + offset, r["metrics"]["p99_ms"], "k_", ms=10)
        labels.append(f"{scenario}\n{users} users")
    ax.set_xticks(range(len(http)), labels, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("latency ms (bar p50, tick p99)")
    ax.axhline(REASONING_P99_TARGET_MS, color="grey", ls=":", lw=1,
               label=f"reasoning p99 target {REASONING_P99_TARGET_MS:g} ms")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_serving_report(rows: list[dict], facts: dict, args: argparse.Namespace, command: str) -> None:
    from training.eval.report import write_report

    png = plot_latency([r for r in rows if not r["name"].startswith("profile_")],
                       args.out_dir / f"{args.report}_latency.png")
    notes = notes_md(rows, facts, args, png)
    md, js = write_report(args.report, rows, command, out_dir=args.out_dir, notes_md=notes, plot_metric=None)
    print(f"wrote {md} and {js}")


def notes_md(rows: list[dict], facts: dict, args: argparse.Namespace, png: Path | None) -> str:
    """Targets and set-up (below the table), then the --notes file when it exists."""
    by_name = {r["name"]: r for r in rows}
    lines = ["## Targets"]
    for scenario in ("direct_native", "direct_vllm"):
        r = by_name.get(f"{scenario}_ratio_c8")
        if r:
            lines.append(f"- {scenario}: HTTP p50 / in-process p50 at 8 users = {r['metrics']['ratio']:.2f} "
                         f"(target ≤ {RATIO_TARGET}) → **{r['verdict']}**; mean ratio {r['metrics']['ratio_mean']:.2f}")
    for users in [int(u) for u in args.users.split(",") if u]:
        r = by_name.get(f"reasoning_cached_c{users}")
        if r:
            lines.append(f"- reasoning_cached at {users} users: p99 {r['metrics']['p99_ms']:.1f} ms (target ≤ "
                         f"{REASONING_P99_TARGET_MS:g} ms) → **{r['verdict']}**")
    errors = sum(r["metrics"].get("errors", 0) for r in rows if "_ratio_" not in r["name"])
    lines.append(f"- errors over every request of every run (benchmark and profile): {errors} "
                 f"(target 0) → **{'pass' if errors == 0 else 'fail'}**")
    if png is not None:
        lines += ["", f"![latency p50 (bar) and p99 (tick), HTTP vs in-process]({png.name})"]
    lines += ["", "## Set-up",
              f"- Everything on 127.0.0.1: throwaway redis-server, Ray Serve app (one ingress replica, "
              f"{args.threads} CPU / torch thread(s); `serving.deployments.start`; HTTP via {http_path(args)}; "
              f"native engine: {facts.get('native_engine', 'in the replica')}), "
              f"locust headless as a subprocess "
              f"(FastHttpUser, no think time), in-process models in the benchmark process with {args.threads} torch "
              f"thread(s). Load generator, server and other jobs share the machine's {os.cpu_count()} cores.",
              f"- Users: {args.n_users} sampled ML-100k users with training histories (temporal split); direct "
              f"requests send each user's last {args.history_len} items, k={args.k}, exclude_seen; reasoning "
              f"requests send the user id only (stored history + programmatic-teacher CoT in Redis, user vector "
              f"cached beforehand: {facts.get('vectors_written')} written; answers by another path at the check: "
              f"{facts.get('path_mismatch_at_check')}).",
              f"- Runs: per scenario and concurrency, the in-process closed loop ({args.inprocess_duration:g} s) then "
              f"locust ({args.duration:g} s), never both at once, {args.rounds} time(s) in turn, "
              f"pooled (percentiles over all rounds' samples, rps over their summed windows); "
              f"the first {args.warmup:g} s of each are left out "
              f"of latency and rps; percentiles are exact (numpy, linear) over per-request samples; errors count "
              f"non-2xx over whole runs.",
              f"- Serve replica + proxy with no traffic: {facts.get('serve_idle_cores')} cores "
              f"(`idle_cpu_ms_per_req`: that background share of `cpu_ms_per_req`).",
              f"- Bundles: policy `{_rel(args.sft)}`, Rechead `{_rel(args.rechead)}`.",
              f"- Load average (1/5/15 min) before {_load(facts['loadavg_before'])}, after "
              f"{_load(facts['loadavg_after'])}; timings: in-process models {facts.get('inprocess_load_s')} s, "
              f"Redis seeding {facts.get('seed_s')} s, service start {facts.get('serve_start_s')} s, profile "
              f"{facts.get('profile_s')} s, whole run {facts['total_s']} s."]
    profile = [r for r in rows if r["name"].startswith("profile_")]
    if profile:
        from loadtests.profile import ladder_md

        lines += ["", ladder_md(profile, facts.get("pyspy") or {}, [int(u) for u in args.profile_users.split(",")])]
    if args.notes and Path(args.notes).is_file():
        lines += ["", Path(args.notes).read_text().strip()]
    return "\n".join(lines)


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _load(values: Sequence[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)
