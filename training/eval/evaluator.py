"""Model-independent evaluator: rank, score, write metrics.json and predictions.jsonl (DESIGN.md §3).

Every recommender is scored through `Recommender.rank` over the full catalog.
The predictions file (`sample_id, user_id, history, target, ranked`; raw ids)
is enough to recompute every quality metric with `metrics_from_predictions`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from training.catalog import Catalog
from training.data.types import Sample
from training.eval.metrics import (
    DEFAULT_KS,
    coverage_at_k,
    head_items,
    invalid_rate,
    per_sample_metrics,
)
from training.recommender import Recommender


def _mean(x: np.ndarray) -> float | None:
    return float(x.mean()) if x.size else None


def compute_metrics(
    ranked_lists: Sequence[Sequence[str]],
    targets: Sequence[str],
    *,
    catalog: Catalog,
    train_item_counts: dict[str, int],
    ks: Sequence[int] = DEFAULT_KS,
    head_share: float = 0.2,
) -> dict:
    """Quality metrics of n ranked lists against n targets.

    Keys: hr@k, ndcg@k (means over samples); hr_tail@k, ndcg_tail@k (means over
    samples whose target is not a head item, `metrics.head_items`; None when
    there are none); coverage@k (catalog items only); invalid_rate at max(ks);
    n_samples, n_tail_samples.
    """
    per = per_sample_metrics(ranked_lists, targets, ks)
    head = head_items(train_item_counts, head_share)
    tail = np.array([t not in head for t in targets], dtype=bool)
    out: dict = {}
    for k in ks:
        out[f"hr@{k}"] = _mean(per[f"hr@{k}"])
        out[f"ndcg@{k}"] = _mean(per[f"ndcg@{k}"])
    for k in ks:
        out[f"hr_tail@{k}"] = _mean(per[f"hr@{k}"][tail])
        out[f"ndcg_tail@{k}"] = _mean(per[f"ndcg@{k}"][tail])
    for k in ks:
        out[f"coverage@{k}"] = coverage_at_k(ranked_lists, k, len(catalog), catalog)
    out["invalid_rate"] = invalid_rate(ranked_lists, catalog, max(ks))
    out["n_samples"] = len(targets)
    out["n_tail_samples"] = int(tail.sum())
    return out


def rank_all(
    recommender: Recommender,
    samples: Sequence[Sample],
    k: int,
    exclude: Sequence[set[str]] | None = None,
    batch_size: int = 256,
    progress: bool = True,
) -> list[list[str]]:
    """recommender.rank over `samples` in batches of `batch_size`, with a tqdm bar."""
    ranked: list[list[str]] = []
    desc = f"rank {getattr(recommender, 'name', type(recommender).__name__)}"
    with tqdm(total=len(samples), desc=desc, unit="sample", disable=not progress) as bar:
        for start in range(0, len(samples), batch_size):
            batch = samples[start : start + batch_size]
            excl = exclude[start : start + batch_size] if exclude is not None else None
            out = recommender.rank(batch, k, exclude=excl)
            if len(out) != len(batch):
                raise ValueError(f"rank returned {len(out)} lists for {len(batch)} samples")
            ranked.extend([list(r) for r in out])
            bar.update(len(batch))
    return ranked


def write_predictions(path: Path, samples: Sequence[Sample], ranked: Sequence[Sequence[str]]) -> None:
    """One JSON object a line: sample_id, user_id, history, target, ranked (raw ids)."""
    with Path(path).open("w") as f:
        for s, r in zip(samples, ranked, strict=True):
            row = {
                "sample_id": s.sample_id,
                "user_id": s.user_id,
                "history": list(s.history),
                "target": s.target,
                "ranked": list(r),
            }
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def load_predictions(path: Path) -> list[dict]:
    """The rows of a predictions.jsonl file, in file order."""
    with Path(path).open() as f:
        return [json.loads(line) for line in f if line.strip()]


def metrics_from_predictions(
    path: Path,
    *,
    catalog: Catalog,
    train_item_counts: dict[str, int],
    ks: Sequence[int] = DEFAULT_KS,
    head_share: float = 0.2,
) -> dict:
    """`compute_metrics` recomputed from a predictions.jsonl file alone (no model)."""
    rows = load_predictions(path)
    return compute_metrics(
        [r["ranked"] for r in rows],
        [r["target"] for r in rows],
        catalog=catalog,
        train_item_counts=train_item_counts,
        ks=ks,
        head_share=head_share,
    )


def evaluate(
    recommender: Recommender,
    samples: Sequence[Sample],
    *,
    catalog: Catalog,
    train_item_counts: dict[str, int],
    out_dir: Path,
    ks: Sequence[int] = DEFAULT_KS,
    filter_seen: bool = False,
    seen_items: Callable[[Sample], set[str]] | None = None,
    batch_size: int = 256,
    subset_note: str = "",
    progress: bool = True,
) -> dict:
    """Rank `samples` with top-max(ks), write out_dir/{metrics.json, predictions.jsonl}, return metrics.

    filter_seen: pass exclude=[seen_items(s) for s in batch] to `rank`
    (seen_items is then required, e.g. `SplitData.seen_items`: the user's whole past).
    Metrics: `compute_metrics` keys plus seconds (wall time of ranking),
    seconds_per_1k_samples, filter_seen, k, recommender, subset_note.
    """
    if filter_seen and seen_items is None:
        raise ValueError("filter_seen=True needs seen_items")
    k = max(ks)
    exclude = [seen_items(s) for s in samples] if filter_seen else None
    t0 = time.perf_counter()
    ranked = rank_all(recommender, samples, k, exclude, batch_size, progress)
    seconds = time.perf_counter() - t0

    metrics = compute_metrics(
        ranked, [s.target for s in samples], catalog=catalog, train_item_counts=train_item_counts, ks=ks
    )
    metrics.update(
        seconds=seconds,
        seconds_per_1k_samples=seconds * 1000.0 / len(samples) if samples else None,
        filter_seen=filter_seen,
        k=k,
        recommender=getattr(recommender, "name", type(recommender).__name__),
        subset_note=subset_note,
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_predictions(out_dir / "predictions.jsonl", samples, ranked)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
