"""How the CLI prints metrics and recommendations (tables for people, JSON for scripts)."""

from __future__ import annotations

import json
import re

from rich.console import Console
from rich.table import Table

from training.eval.metrics import REPORTED_METRICS

_STAGE_START = re.compile(r" (?=step \d+ , )")  # "step k , <stage> :" opens each stage of a CoT as the policy writes it


def print_metrics(console: Console, name: str, metrics: dict) -> None:
    table = Table(title=f"{name} on {metrics.get('subset_note', 'the test split')}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    reasoning_keys = [key for key in metrics if key.startswith("pass@") or key == "closed_rate"]
    for key in (*REPORTED_METRICS, *reasoning_keys, "seconds_per_1k_samples"):
        value = metrics.get(key)
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)
    console.print(f"seen items filtered from the ranking: {metrics.get('filter_seen')}")
    if not metrics.get("recorded_in_manifest"):
        console.print("metrics not recorded in the bundle manifest (another split, evaluation settings, --out "
                      "or --pass-k)")


def reasoning_document(catalog, reasoning) -> dict:
    """JSON of a `ReasoningOutput`: each CoT (text, closed by the policy itself) and each CoT's answer item."""
    return {"thoughts": [{"text": text, "closed": closed}
                         for text, closed in zip(reasoning.thoughts, reasoning.closed, strict=True)],
            "answers": [{"item_id": i, "title": catalog.display_name(i)} for i in reasoning.answers]}


def format_thought(text: str) -> str:
    """A CoT as the policy wrote it (one line of word pieces), one stage a line."""
    return _STAGE_START.sub("\n", text)


def print_reasoning(console: Console, catalog, reasoning) -> None:
    """Each CoT, whether the policy closed it, then its answer item."""
    answers = list(reasoning.answers)
    for number, (text, closed) in enumerate(zip(reasoning.thoughts, reasoning.closed, strict=True), start=1):
        ending = "closed by the policy" if closed else "cut at the token limit"
        console.print(f"chain of thought {number} of {len(reasoning.thoughts)} ({ending}):", markup=False)
        for line in format_thought(text).splitlines():
            console.print(f"    {line}", markup=False, highlight=False)
        if number <= len(answers):
            item = answers[number - 1]
            console.print(f"  answer: {catalog.display_name(item)}  (id {item})", markup=False)


def print_recommendations(console: Console, recommender, sample, ranked: list[str], exclude_seen: bool,
                          timing: dict, as_json: bool, reasoning=None) -> None:
    """The ranked items with titles; reasoning (a `ReasoningOutput`, reasoning mode) adds the CoTs and answers."""
    catalog, manifest = recommender.catalog, getattr(recommender, "manifest", {}) or {}
    if as_json:
        doc = {"user_id": sample.user_id, "history": list(sample.history), "exclude_seen": exclude_seen,
               "mode": "direct" if reasoning is None else "reasoning",
               "bundle": {k: manifest.get(k) for k in ("name", "kind", "bundle_version")},
               "items": [{"rank": r, "item_id": i, "title": catalog.display_name(i)}
                         for r, i in enumerate(ranked, start=1)],
               "seconds": {k: round(v, 4) for k, v in timing.items()}}
        if reasoning is not None:
            doc["reasoning"] = reasoning_document(catalog, reasoning)
        console.print_json(json.dumps(doc, ensure_ascii=False))
        return
    console.print(f"user {sample.user_id}: last items " +
                  "; ".join(catalog.display_name(i) for i in sample.history[-5:]), markup=False)
    if reasoning is not None:
        print_reasoning(console, catalog, reasoning)
        console.print("ranked (answers first):", markup=False)
    for position, item in enumerate(ranked, start=1):
        console.print(f"{position:>3}. {catalog.display_name(item)}  (id {item})", markup=False)
