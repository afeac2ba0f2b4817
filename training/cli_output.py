"""How the CLI prints metrics and recommendations (tables for people, JSON for scripts)."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from training.eval.metrics import REPORTED_METRICS


def print_metrics(console: Console, name: str, metrics: dict) -> None:
    table = Table(title=f"{name} on {metrics.get('subset_note', 'the test split')}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in (*REPORTED_METRICS, "seconds_per_1k_samples"):
        value = metrics.get(key)
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)
    console.print(f"seen items filtered from the ranking: {metrics.get('filter_seen')}")
    if not metrics.get("recorded_in_manifest"):
        console.print("metrics not recorded in the bundle manifest (another split, evaluation settings or --out)")


def print_recommendations(console: Console, recommender, sample, ranked: list[str], exclude_seen: bool,
                          timing: dict, as_json: bool) -> None:
    catalog, manifest = recommender.catalog, getattr(recommender, "manifest", {}) or {}
    if as_json:
        doc = {"user_id": sample.user_id, "history": list(sample.history), "exclude_seen": exclude_seen,
               "bundle": {k: manifest.get(k) for k in ("name", "kind", "bundle_version")},
               "items": [{"rank": r, "item_id": i, "title": catalog.display_name(i)}
                         for r, i in enumerate(ranked, start=1)],
               "seconds": {k: round(v, 4) for k, v in timing.items()}}
        console.print_json(json.dumps(doc, ensure_ascii=False))
        return
    console.print(f"user {sample.user_id}: last items " +
                  "; ".join(catalog.display_name(i) for i in sample.history[-5:]), markup=False)
    for position, item in enumerate(ranked, start=1):
        console.print(f"{position:>3}. {catalog.display_name(item)}  (id {item})", markup=False)
