"""Capacity model: machines, memory and nearline hours for 1M/10M/100M users × 100k/1M/10M items (issue 13).

    OMP_NUM_THREADS=1 python -m benchmarks.capacity [--requests-per-user-day 2 --reasoning-share 0.5 ...]

Per-node figures come from the committed reports (each input row names its file, row and key):
serving requests/s per node and mode (reports/serving.json), nearline tokens/s (reports/nearline.json),
FAISS search latency per item count (reports/nearline.json). What no report holds is measured here in
30-90 s on 2 shared cores (benchmarks/capacity_measure.py): Redis bytes per user, FAISS/IdMap bytes per
item, feedback-log bytes per event. Traffic is a set of stated assumptions (flags below), printed in the
report. The formulas live in benchmarks/capacity_model.py, tested on hand-computed cases.
Writes reports/capacity.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import capacity_model as cm
from serving.retrieval.settings import IndexSettings, auto_nlist
from training.eval.report import git_commit, machine_info

USERS = (1_000_000, 10_000_000, 100_000_000)
ITEMS = (100_000, 1_000_000, 10_000_000)
MODES = ("direct_native", "direct_vllm", "reasoning_cached")


@dataclass(frozen=True)
class Traffic:
    """Stated assumptions (not measured); each is a flag of the same name."""

    requests_per_user_day: float = 2.0  # recommend calls per registered user per day, averaged over all users
    peak_to_mean: float = 3.0  # busiest-hour request rate over the daily mean
    reasoning_share: float = 0.5  # share of requests routed to reasoning-mode arms
    cache_hit_rate: float = 0.9  # reasoning requests answered from a cached vector; misses fall back to direct
    direct_engine: str = "direct_native"  # which measured direct engine serves direct requests
    target_utilisation: float = 0.6  # plan nodes to run at this share of their saturation throughput
    refresh_share_per_day: float = 0.1  # share of users whose history changes per day (their CoT is rewritten)
    cot_tokens_per_user: float = 64.0  # generated CoT tokens per refreshed user (the measured run's cap)
    chars_per_token: float = 4.0  # CoT characters stored per generated token
    nearline_window_h: float = 24.0  # hours a day the nearline job may run
    redis_headroom: float = 1.5  # Redis memory over used_memory: fragmentation, replication, fork copy-on-write
    redis_shard_gib: float = 25.0  # usable memory of one Redis shard
    exposures_per_request: float = 10.0  # exposure events logged per recommend call
    clicks_per_request: float = 0.1  # click events logged per recommend call


# ---- inputs from the committed reports ---------------------------------------------------------------------------

def load_report(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def row_of(report: dict, name: str) -> dict:
    for row in report["rows"]:
        if row["name"] == name:
            return row
    raise KeyError(f"no row {name!r} in report {report['benchmark']!r}")


def best_zero_error_row(report: dict, mode: str) -> dict:
    """The HTTP row `<mode>_c<users>` with the most requests/s among those with no errors."""
    pattern = re.compile(rf"{mode}_c\d+")
    rows = [r for r in report["rows"] if pattern.fullmatch(r["name"]) and r["metrics"].get("error_rate") == 0
            and r["metrics"].get("rps", 0) > 0]
    if not rows:
        raise KeyError(f"no error-free HTTP row for {mode}")
    return max(rows, key=lambda r: r["metrics"]["rps"])


def _input(name: str, value: float, unit: str, file: str, report: dict, row: str, key: str, notes: str) -> dict:
    return {"name": name, "dataset": None, "protocol": None, "metrics": {"value": value}, "unit": unit,
            "source": {"file": file, "row": row, "key": key, "command": report["command"],
                       "git_commit": report["git_commit"], "created_at": report["created_at"]},
            "notes": notes}


def serving_inputs(path: Path) -> list[dict]:
    """Requests/s per node for each mode: the best error-free HTTP row through Ray Serve."""
    report, out = load_report(path), []
    for mode in MODES:
        row = best_zero_error_row(report, mode)
        m = row["metrics"]
        out.append(_input(f"input_{mode}_rps", m["rps"], "requests/s per node", str(path), report, row["name"],
                          "metrics.rps", f"best error-free HTTP row of {mode} (locust users {m['users']}): p99 "
                          f"{m['p99_ms']} ms, CPU {m['cpu_ms_per_req']} ms/request; 1,682 ML-100k items"))
    cores = report["machine"]["cores"]
    out.append(_input("input_serving_cores", cores, "cores per node", str(path), report, "-", "machine.cores",
                      f"the serving runs' machine: {report['machine']['cpu']}, GPU {report['machine']['gpu']}"))
    return out


def nearline_inputs(path: Path) -> list[dict]:
    """Nearline tokens/s per node and FAISS search latency per item count."""
    report = load_report(path)
    row = row_of(report, "nearline")
    m = row["metrics"]
    out = [_input("input_nearline_tokens_per_s", m["tokens_per_s"], "CoT tokens/s per node", str(path), report,
                  "nearline", "metrics.tokens_per_s",
                  f"Ray Data job end to end (engine start, Redis, answer beam included); {m['users_per_s']:.3f} "
                  f"users/s = {m['tokens_per_s'] / m['users_per_s']:.0f} tokens/user; unclosed_rate "
                  f"{m['unclosed_rate']}: every CoT hit the token cap; {row.get('from_run', '')}")]
    for n in (100_000, 1_000_000):  # the measured sizes of the table's item counts
        kind = IndexSettings().resolve_kind(n)
        name = f"faiss_{kind}_{n}"
        r = row_of(report, name)["metrics"]
        out.append(_input(f"input_search_p50_ms_{n}", r["p50_ms"], "ms per query (p50)", str(path), report, name,
                          "metrics.p50_ms", f"{kind} index (auto kind at {n} items), d=64, top-50, 1 thread, "
                          f"p99 {r['p99_ms']} ms, recall@50 {r['recall']}"))
    return out


def input_values(rows: list[dict]) -> dict[str, float]:
    return {r["name"]: r["metrics"]["value"] for r in rows}


# ---- measured here -----------------------------------------------------------------------------------------------

def measured_rows(command: str) -> list[dict]:
    """Redis bytes/user, feedback bytes/event, IVF + IdMap bytes/item, measured now (30-90 s on 2 shared cores)."""
    from benchmarks.capacity_measure import measure_feedback_bytes, measure_index_bytes, measure_redis_user_bytes
    from feature_store.local_redis import RedisServer

    with RedisServer() as server:
        redis = measure_redis_user_bytes(server.url)
        feedback = measure_feedback_bytes(server.url)
    index = measure_index_bytes()
    src = {"command": command}
    chars = [p["cot_chars"] for p in redis["points"]]
    base, slope = cm.fit_line(chars, [p["bytes_per_user"] for p in redis["points"]])
    sizes = [p["items"] for p in index["points"]]
    rss_fixed, rss_slope = cm.fit_line(sizes, [p["rss_bytes_on_load"] for p in index["points"]])
    ser_fixed, ser_slope = cm.fit_line(sizes, [p["serialized_bytes"] for p in index["points"]])
    idmap_per_item = index["points"][-1]["idmap_bytes"] / sizes[-1]
    return [
        {"name": "redis_bytes_per_user", "dataset": None, "protocol": None,
         "metrics": {"base_bytes": round(base, 1), "bytes_per_cot_char": round(slope, 4)},
         "points": redis["points"], "source": {**src, "function": "capacity_measure.measure_redis_user_bytes"},
         "notes": f"Redis {redis['redis_version']} used_memory growth / users after FeatureStore.write of "
                  f"{redis['users']:,} rows with every field ({redis['history_len']}-item history, "
                  f"top-{redis['answer_k']} answer, {redis['dim']}-d user vector, versions, "
                  f"{redis['ttl_s'] // 86400}-day TTL) per CoT length; least-squares line over the CoT lengths"},
        {"name": "feedback_bytes_per_event", "dataset": None, "protocol": None,
         "metrics": {k: v for k, v in feedback.items() if k != "events"},
         "source": {**src, "function": "capacity_measure.measure_feedback_bytes"},
         "notes": f"{feedback['events']:,} events (10 exposures per request id, a click every 10th request): "
                  "JsonlFeedbackLog file bytes / events; RedisFeedbackLog used_memory growth / events "
                  "(stream + dedupe set)"},
        {"name": "faiss_ivf_bytes_per_item", "dataset": None, "protocol": None,
         "metrics": {"rss_bytes_per_item": round(rss_slope, 1), "rss_fixed_bytes": round(rss_fixed),
                     "serialized_bytes_per_item": round(ser_slope, 1),
                     "idmap_bytes_per_item": round(idmap_per_item, 1)},
         "points": index["points"], "source": {**src, "function": "capacity_measure.measure_index_bytes"},
         "notes": f"ItemIndex kind ivf (nlist {index['nlist']}), d={index['dim']}, random unit vectors; resident "
                  "memory growth of a fresh process on faiss.read_index, line over the sizes; IdMap = the "
                  "index's Python str<->int map (tracemalloc, 8-character ids) at the largest size"},
    ]


# ---- the table ---------------------------------------------------------------------------------------------------

def search_ms(n_items: int, inputs: dict[str, float]) -> tuple[float, str]:
    """p50 ms of one query at n_items: the measured row, else extrapolated from 1M by IVF scanned vectors."""
    key = f"input_search_p50_ms_{n_items}"
    if key in inputs:
        return inputs[key], "measured"
    s = IndexSettings()
    ref = 1_000_000
    work_ref = cm.ivf_scanned_vectors(ref, auto_nlist(ref), s.nprobe)
    work_new = cm.ivf_scanned_vectors(n_items, auto_nlist(n_items), s.nprobe)
    return cm.scale_latency(inputs[f"input_search_p50_ms_{ref}"], work_ref, work_new), "extrapolated"


def capacity_row(users: int, items: int, t: Traffic, inputs: dict[str, float], measured: dict[str, dict],
                 dim: int) -> dict:
    peak = cm.peak_rps(users, t.requests_per_user_day, t.peak_to_mean)
    load = cm.split_by_mode(peak, t.reasoning_share, t.cache_hit_rate)
    ms, how = search_ms(items, inputs)
    reasoning_node_rps = cm.rps_with_extra_cpu(inputs["input_reasoning_cached_rps"], inputs["input_serving_cores"], ms)
    direct_nodes = cm.replicas_needed(load["direct"], inputs[f"input_{t.direct_engine}_rps"], t.target_utilisation)
    reasoning_nodes = cm.replicas_needed(load["reasoning_cached"], reasoning_node_rps, t.target_utilisation)
    r = measured["redis_bytes_per_user"]["metrics"]
    cot_chars = t.cot_tokens_per_user * t.chars_per_token
    per_user = cm.redis_bytes_per_user(r["base_bytes"], r["bytes_per_cot_char"], cot_chars)
    redis_bytes = cm.redis_memory_bytes(users, per_user, t.redis_headroom)
    f = measured["faiss_ivf_bytes_per_item"]["metrics"]
    index_bytes = (cm.index_bytes(items, f["rss_bytes_per_item"], f["rss_fixed_bytes"])
                   + cm.index_bytes(items, f["idmap_bytes_per_item"]) + cm.index_bytes(items, 4 * dim))
    node_hours = cm.nearline_node_hours(users * t.refresh_share_per_day, t.cot_tokens_per_user,
                                        inputs["input_nearline_tokens_per_s"])
    nearline_nodes = cm.nodes_for_window(node_hours, t.nearline_window_h)
    events = t.exposures_per_request + t.clicks_per_request
    log = cm.log_bytes_per_day(users, t.requests_per_user_day, events,
                               measured["feedback_bytes_per_event"]["metrics"]["jsonl_bytes_per_event"])
    metrics = {
        "users": users, "items": items, "peak_rps": round(peak, 1), "direct_rps": round(load["direct"], 1),
        "reasoning_rps": round(load["reasoning_cached"], 1), "search_p50_ms": round(ms, 2),
        "reasoning_rps_per_node": round(reasoning_node_rps, 1), "direct_nodes": direct_nodes,
        "reasoning_nodes": reasoning_nodes, "redis_gib": round(redis_bytes / cm.GIB, 2),
        "redis_shards": cm.shards_needed(redis_bytes, t.redis_shard_gib * cm.GIB),
        "index_gib_per_reasoning_node": round(index_bytes / cm.GIB, 3),
        "nearline_node_hours_per_day": round(node_hours, 1), "nearline_nodes": nearline_nodes,
        "log_gb_per_day": round(log / 1e9, 2),
        "cpu_nodes": direct_nodes + reasoning_nodes + nearline_nodes,
    }
    return {"name": f"capacity_u{_short(users)}_i{_short(items)}", "dataset": None, "protocol": None,
            "metrics": metrics, "notes": f"search latency {how}; direct engine {t.direct_engine}"}


def _short(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k"


# ---- report ------------------------------------------------------------------------------------------------------

HONESTY = """\
**Read this first.** Every per-node figure was measured on one **CPU-only, 2-core** shared machine
(AMD EPYC, no GPU), with the project's **tiny** models (a 2-layer, hidden-128 Qwen3 policy; a d=64 Rechead)
on ML-100k (1,682 items), with the load generator on the same machine and load averages far above 2.
A "node" below is that machine. So the table is the method plus what *this* code costs on such nodes, not a
forecast for production: a real policy is 10-1000× larger (slower per token) and would run on GPUs (far more
tokens/s per node); neither was measured here. Replace the `input_*` rows with figures from the target
hardware and rerun; the formulas do not change. Direct-mode cost was measured at 1,682 items and is held
constant across item counts (the trie beam's steps grow with identifier depth, not measured). Search latency
at 10M items is extrapolated (IVF scanned vectors, from the 1M row); at 100k and 1M it is measured."""

FORMULAS = """\
- peak rps = users × requests/user/day / 86,400 × peak_to_mean
- reasoning rps = peak × reasoning_share × cache_hit_rate; direct rps = peak - reasoning rps
  (reasoning misses fall back to direct mode)
- nodes per mode = ceil(load / (per-node rps × target_utilisation))
- reasoning rps per node at n items = cores·1000 / (cores·1000 / measured rps + search p50 ms(n))
  (the measured row searched 1,682 items; adding the whole p50 at n counts that small search twice: conservative)
- search ms at 10M = p50(1M) × scanned(10M) / scanned(1M), scanned = nlist + nprobe·n/nlist, nlist = auto_nlist(n)
- Redis bytes/user = base + bytes_per_cot_char × cot_tokens × chars_per_token; Redis GiB = users × that × headroom;
  shards = ceil(GiB / shard GiB)
- index GiB per reasoning node = IVF fixed + n × (IVF bytes/item + IdMap bytes/item + 4·d item matrix)
- nearline node-hours/day = users × refresh_share × cot_tokens / tokens_per_s / 3,600; nodes = ceil(hours / window)
- log GB/day = users × requests/user/day × (exposures + clicks per request) × JSONL bytes/event
- cpu_nodes = direct + reasoning + nearline nodes (2-core nodes as measured); Redis shards are counted apart"""

LEFT_OUT = """\
- GPU nodes: no report holds a GPU serving or nearline figure, so none is used.
- The Ray Serve proxy/ingress is inside the measured per-node rps (one node = proxy + replica); a separate
  ingress tier, Redis read throughput (reports/nearline.json `redis_read_*`) and network are not sized.
- Computing user vectors (MiniLM + Rechead) after each CoT refresh, the catalog's item text in memory, the
  direct-mode trie and policy memory, and Redis replicas are not counted.
- reports/ab_readout.json and reports/beam_speed.json hold no per-node serving figure (A/B readout quality;
  offline batched beam ms/sample), so they are not inputs."""


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def _fmt(v: float) -> str:
    return f"{v:,}" if isinstance(v, int) else f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"


def headline(m: dict) -> str:
    """One sentence on a capacity row (the largest: 100M users, 10M items)."""
    return (f"**{_short(m['users'])} users, {_short(m['items'])} items:** {m['peak_rps']:,.0f} requests/s at peak "
            f"→ {m['direct_nodes']:,} direct + {m['reasoning_nodes']:,} reasoning serving nodes, "
            f"{m['nearline_nodes']:,} nearline nodes ({m['nearline_node_hours_per_day']:,.0f} node-hours/day), "
            f"{m['cpu_nodes']:,} 2-core nodes in all; Redis {m['redis_gib']:,.0f} GiB ({m['redis_shards']} shards), "
            f"{m['index_gib_per_reasoning_node']:.1f} GiB of index per reasoning node, "
            f"{m['log_gb_per_day']:,.0f} GB/day of feedback log.")


def markdown(report: dict, traffic: Traffic) -> str:
    m = report["machine"]
    rows = report["rows"]
    inputs = [r for r in rows if r["name"].startswith("input_")]
    measured = [r for r in rows if "function" in r.get("source", {})]
    capacity = [r for r in rows if r["name"].startswith("capacity_")]
    cap_keys = ["peak_rps", "direct_nodes", "reasoning_nodes", "reasoning_rps_per_node", "search_p50_ms",
                "redis_gib", "redis_shards", "index_gib_per_reasoning_node", "nearline_node_hours_per_day",
                "nearline_nodes", "log_gb_per_day", "cpu_nodes"]
    parts = [
        "# capacity",
        f"`{report['command']}` — commit `{report['git_commit']}`, {report['created_at']}, "
        f"{m['cpu']} ({m['cores']} cores), GPU: {m['gpu'] or 'none'}",
        HONESTY,
        "## Capacity (users × items)",
        _table(["users", "items", *cap_keys],
               [[_short(r["metrics"]["users"]), _short(r["metrics"]["items"]),
                 *[_fmt(r["metrics"][k]) for k in cap_keys]] for r in capacity]),
        headline(capacity[-1]["metrics"]),
        "search_p50_ms at 10M items is extrapolated; every other cell is computed from the inputs below.",
        "## Stated traffic (assumptions, flags of `benchmarks/capacity.py`)",
        _table(["parameter", "value"], [[f"`--{k.replace('_', '-')}`", v] for k, v in asdict(traffic).items()]),
        "## Inputs from committed reports",
        _table(["input", "value", "unit", "source (file → row → key)", "notes"],
               [[r["name"], _fmt(r["metrics"]["value"]), r["unit"],
                 f"{r['source']['file']} → `{r['source']['row']}` → `{r['source']['key']}` "
                 f"(commit {r['source']['git_commit']})", r["notes"]] for r in inputs]),
        "## Measured by this script",
        _table(["row", "metrics", "function", "notes"],
               [[r["name"], ", ".join(f"{k} {v}" for k, v in r["metrics"].items()), r["source"]["function"],
                 r["notes"]] for r in measured]),
        "## Formulas (benchmarks/capacity_model.py, tested in tests/benchmarks/test_capacity.py)",
        FORMULAS,
        "## Left out",
        LEFT_OUT,
    ]
    return "\n\n".join(parts) + "\n"


def build_report(traffic: Traffic, reports_dir: Path, command: str, measured: list[dict], dim: int) -> dict:
    inputs = serving_inputs(reports_dir / "serving.json") + nearline_inputs(reports_dir / "nearline.json")
    values, by_name = input_values(inputs), {r["name"]: r for r in measured}
    assumptions = {"name": "assumptions", "dataset": None, "protocol": None,
                   "metrics": {k: v for k, v in asdict(traffic).items() if not isinstance(v, str)},
                   "notes": f"stated, not measured; direct_engine {traffic.direct_engine}; d={dim}"}
    table = [capacity_row(u, n, traffic, values, by_name, dim) for u in USERS for n in ITEMS]
    return {"benchmark": "capacity", "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "command": command, "git_commit": git_commit(), "machine": machine_info(),
            "rows": [assumptions, *inputs, *measured, *table]}


def parse_traffic(argv: list[str]) -> tuple[Traffic, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for f in fields(Traffic):
        kwargs = {"choices": ["direct_native", "direct_vllm"]} if f.name == "direct_engine" else {"type": float}
        parser.add_argument(f"--{f.name.replace('_', '-')}", default=f.default, **kwargs)
    parser.add_argument("--reports-dir", type=Path, default=Path("reports"))
    parser.add_argument("--out-dir", type=Path, default=Path("reports"))
    args = parser.parse_args(argv)
    return Traffic(**{f.name: getattr(args, f.name) for f in fields(Traffic)}), args


def main() -> None:
    from training.config import RecheadConfig

    traffic, args = parse_traffic(sys.argv[1:])
    threads = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} " if "OMP_NUM_THREADS" in os.environ else ""
    command = threads + "python -m " + " ".join(["benchmarks.capacity", *sys.argv[1:]])
    dim = RecheadConfig.model_fields["dim"].default
    report = build_report(traffic, args.reports_dir, command, measured_rows(command), dim)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "capacity.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    (args.out_dir / "capacity.md").write_text(markdown(report, traffic))
    print(markdown(report, traffic))


if __name__ == "__main__":
    main()
