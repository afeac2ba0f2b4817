"""`reasonrec` command line: data, training, evaluation, recommendations, configs, pretrained models.

`data split`, `train`, `baseline train`, `eval` and `config show` take `--config NAME|PATH` and trailing
`key.sub=value` overrides; `recommend` reads everything from the bundle. Errors are one line on stderr
and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from enum import StrEnum
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import typer
from rich.console import Console

from feature_store.cli import store_app
from feature_store.nearline_cli import nearline_app
from serving.abtest.cli import ab_app
from serving.cli import serve_command
from training.cli_output import print_metrics, print_recommendations

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(help="reasonrec: train an LLM to recommend items, evaluate it, serve it.", no_args_is_help=True)
data_app = typer.Typer(help="Fetch datasets and write split files.", no_args_is_help=True)
train_app = typer.Typer(help="Train the policy: SFT, then RL.", no_args_is_help=True)
baseline_app = typer.Typer(help="Classic baselines on the same splits.", no_args_is_help=True)
config_app = typer.Typer(help="Show resolved configs and list presets.", no_args_is_help=True)
models_app = typer.Typer(help="Fetch pretrained LLMs from PyPI wheels into the local cache.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train")
app.add_typer(baseline_app, name="baseline")
app.add_typer(config_app, name="config")
app.add_typer(models_app, name="models")
app.add_typer(store_app, name="store")
app.add_typer(nearline_app, name="nearline")
app.command("serve")(serve_command)
app.add_typer(ab_app, name="ab")
_PIPE = not sys.stdout.isatty()
console = Console(soft_wrap=_PIPE, width=200 if _PIPE else None)
err_console = Console(stderr=True, soft_wrap=True)
CONFIG_OPT = typer.Option(None, "--config", "-c", help="preset name in training/configs or a YAML path")
OVERRIDES_ARG = typer.Argument(None, help="overrides such as sft.max_epochs=3 data.protocol=loo")
JSON_OPT = typer.Option(False, "--json", help="print one JSON object instead of tables")


class Mode(StrEnum):
    """How a policy bundle answers: the trie beam alone, or a chain of thought first (reasoning SFT bundles)."""

    direct = "direct"
    reasoning = "reasoning"


MODE_OPT = typer.Option(Mode.direct, "--mode", help="direct: trie beam; reasoning: CoT, then the trie beam "
                        "(bundles trained with reasoning.enabled=true)")
PASS_K_OPT = typer.Option(None, "--pass-k", min=1, max=50, help="reasoning mode: K sampled CoTs (temperature 0.7, "
                          "top-p 0.9), their answers first; default: the bundle's decoding settings")


def _package_version() -> str:
    try:
        return version("reasonrec")
    except PackageNotFoundError:
        return "unknown"


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"reasonrec {_package_version()}")
        raise typer.Exit()


@app.callback()
def main(_version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                       help="print the version and exit")) -> None:
    """reasonrec: train an LLM to recommend items, evaluate it, serve it."""


def _fail(message: str, code: int = 1) -> None:
    err_console.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    raise typer.Exit(code)


def _known_errors() -> tuple[type[Exception], ...]:
    from training.bundle import BundleError
    from training.data.fetch import FetchError
    from training.data.store import SplitIntegrityError

    return (BundleError, FetchError, SplitIntegrityError, ValueError, RuntimeError, FileNotFoundError,
            PermissionError, KeyError)


@contextmanager
def _clear_errors():
    """Known failures -> one line and exit 1 (KeyError text is unquoted)."""
    try:
        yield
    except _known_errors() as err:
        text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        _fail(str(text).splitlines()[0] if str(text) else type(err).__name__)


def _config(config: str | None, overrides: list[str] | None):
    from training.config import ConfigError, load_config

    try:
        return load_config(config, overrides or [])
    except ConfigError as err:
        _fail(f"config error: {err}", code=2)


def _device(cfg) -> str:
    from training.devices import resolve_device

    with _clear_errors():
        return resolve_device(cfg.device)


def _prepare(cfg):
    from training.pipeline import prepare_data

    with _clear_errors():
        return prepare_data(cfg)


def _train_bundle(cfg, train) -> None:
    """Device, data, then `train(cfg, catalog, split, device) -> (bundle, written)`; says which happened."""
    device = _device(cfg)
    catalog, split = _prepare(cfg)
    with _clear_errors():
        bundle, written = train(cfg, catalog, split, device)
    console.print(f"bundle written: {bundle}" if written else f"bundle up to date, not retrained: {bundle}")


@data_app.command("fetch")
def data_fetch(data_dir: Path = typer.Option(Path("data"), help="where data is cached")) -> None:
    """Download MovieLens-100K from the recbole wheel on PyPI and verify its checksums."""
    from training.data.fetch import fetch_ml100k

    with _clear_errors():
        folder = fetch_ml100k(data_dir)
    console.print(f"ML-100K verified at {folder}")


@data_app.command("split")
def data_split(config: str = CONFIG_OPT, overrides: list[str] = OVERRIDES_ARG) -> None:
    """Write the split files (temporal 8:1:1 by default) when missing or stale; print their hash and counts."""
    from training.data.store import read_meta
    from training.pipeline import split_dir

    cfg = _config(config, overrides)
    catalog, _ = _prepare(cfg)
    meta = read_meta(split_dir(cfg))
    console.print(f"{split_dir(cfg)}: {meta['counts']} samples, {len(catalog)} catalog items, "
                  f"dropped (empty history) {meta['dropped_empty_history']}, sha256 {meta['sha256'][:16]}")


@train_app.command("sft")
def train_sft_cmd(
    config: str = CONFIG_OPT, overrides: list[str] = OVERRIDES_ARG,
    base_model: str | None = typer.Option(None, help="local HF causal LM directory instead of a fresh Qwen3"),
    force: bool = typer.Option(False, help="retrain from scratch even if a checkpoint or bundle exists"),
) -> None:
    """SFT the policy (next-item identifiers + alignment) and write its bundle.

    With reasoning.enabled=true: GREAM's hybrid reasoning SFT instead (teacher CoTs), for `--mode reasoning`.
    """
    extra = [f"policy.base_model={base_model}"] if base_model else []

    def train(cfg, catalog, split, device):
        from training.pipeline import train_policy_bundle

        return train_policy_bundle(cfg, catalog, split, force=force, device=device)

    _train_bundle(_config(config, (overrides or []) + extra), train)


@train_app.command("rl")
def train_rl_cmd(
    from_bundle: Path = typer.Option(..., help="the SFT policy bundle to start from"),
    config: str = CONFIG_OPT, overrides: list[str] = OVERRIDES_ARG,
    force: bool = typer.Option(False, help="retrain even if a bundle of these settings exists"),
) -> None:
    """RL (a recipe: grpo_basic, riser, gream_srpo) or its sft_continued control from a policy bundle."""
    def train(cfg, catalog, split, device):
        from training.pipeline import train_rl_bundle

        return train_rl_bundle(cfg, from_bundle, catalog, split, force=force, device=device)

    _train_bundle(_config(config, overrides), train)



def _train_and_score(cfg, name: str, evaluate, train) -> None:
    """`_train_bundle` with `train(cfg, catalog, split, device) -> (bundle, written)`, then
    `evaluate(cfg, bundle, catalog, split, device) -> metrics` on the bundle, printed under `name`."""
    done = {}

    def run(cfg, catalog, split, device):
        bundle, written = train(cfg, catalog, split, device)
        done.update(cfg=cfg, bundle=bundle, catalog=catalog, split=split, device=device)
        return bundle, written

    _train_bundle(cfg, run)
    with _clear_errors():
        metrics = evaluate(done["cfg"], done["bundle"], done["catalog"], done["split"], done["device"])
    print_metrics(console, metrics.get("recommender", name), metrics)


@train_app.command("rechead")
def train_rechead_cmd(
    config: str = CONFIG_OPT, overrides: list[str] = OVERRIDES_ARG,
    force: bool = typer.Option(False, help="retrain even if a bundle of these settings exists"),
) -> None:
    """RPORec stage I: train the Rechead on history (+ teacher CoT) embeddings, write its bundle, score it on test."""
    from training.reasoning import rechead_bundle

    _train_and_score(_config(config, overrides), "rechead", rechead_bundle.evaluate_rechead_bundle,
                     lambda cfg, catalog, split, device: rechead_bundle.train_rechead_bundle(
                         cfg, catalog, split, device=device, force=force))


@train_app.command("r2ec")
def train_r2ec_cmd(
    config: str = CONFIG_OPT, overrides: list[str] = OVERRIDES_ARG,
    from_bundle: Path | None = typer.Option(None, help="an SFT policy bundle whose weights, tokenizer and "
                                            "identifiers start R2ec (default: a fresh model of the policy section)"),
    force: bool = typer.Option(False, help="retrain even if a bundle of these settings exists"),
) -> None:
    """R2ec: one LM with a rec head, trained with RecPO (r2ec.reasoning=false: the w/o-reasoning control);
    writes its bundle and scores it on test (greedy reasoning, then one rec-head ranking over the catalog)."""
    from training.reasoning import r2ec_bundle

    _train_and_score(_config(config, overrides), "r2ec", r2ec_bundle.evaluate_r2ec_bundle,
                     lambda cfg, catalog, split, device: r2ec_bundle.train_r2ec_bundle(
                         cfg, catalog, split, parent=from_bundle, device=device, force=force))


@baseline_app.command("train")
def baseline_train(
    model: str = typer.Option(..., help="pop | sasrec | gru4rec"),
    config: str = CONFIG_OPT, overrides: list[str] = OVERRIDES_ARG,
    force: bool = typer.Option(False, help="retrain even if the bundle exists"),
) -> None:
    """Train a baseline on the same split files and write its bundle."""
    from training.baselines.registry import BASELINES

    if model not in BASELINES:
        _fail(f"unknown baseline {model[:40]!r}; choose one of {sorted(BASELINES)}")
    def train(cfg, catalog, split, device):
        from training.baselines.bundle import train_baseline_bundle

        return train_baseline_bundle(model, cfg, catalog, split, force=force, config=cfg.baseline, device=device)

    _train_bundle(_config(config, overrides), train)


@app.command("eval")
def eval_cmd(
    bundle: Path = typer.Option(..., help="bundle directory"),
    config: str = CONFIG_OPT, overrides: list[str] = OVERRIDES_ARG,
    out: Path | None = typer.Option(None, help="output folder (default: <bundle>/../eval; reasoning mode: "
                                    "<bundle>/../eval/reasoning[_pass<K>])"),
    allow_split_mismatch: bool = typer.Option(False, help="score a bundle on a split it was not trained on"),
    mode: Mode = MODE_OPT, pass_k: int | None = PASS_K_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Evaluate any bundle on the test split; writes metrics.json and predictions.jsonl."""
    cfg = _config(config, overrides)
    device = _device(cfg)
    reasoning = mode is Mode.reasoning
    with _clear_errors():
        from training.bundle import update_metrics
        from training.inference import load_recommender
        from training.pipeline import check_bundle_split, evaluate_reasoning, evaluate_recommender, may_record_metrics

        recommender = load_recommender(bundle, device, beam_width=cfg.eval.beam_width, mode=mode.value,
                                       pass_k=pass_k)
        catalog, split = _prepare(cfg)
        mismatch = check_bundle_split(recommender.manifest, split, allow_split_mismatch)
        evaluate = evaluate_reasoning if reasoning else evaluate_recommender
        default_out = bundle.parent / "eval" / reasoning_folder(pass_k) if reasoning else bundle.parent / "eval"
        metrics = evaluate(cfg, recommender, catalog, split, out or default_out)
    recorded = may_record_metrics(recommender.manifest, cfg, split, out is None) and not mismatch and pass_k is None
    if recorded:
        prefix = "test_reasoning_" if reasoning else "test_"
        update_metrics(bundle, {f"{prefix}{k}": v for k, v in metrics.items() if isinstance(v, float)})
    metrics.update(split_mismatch=mismatch, recorded_in_manifest=recorded, mode=mode.value)
    if as_json:
        console.print_json(json.dumps(metrics))
        return
    if mismatch:
        err_console.print(f"[yellow]warning:[/yellow] {mismatch}")
    print_metrics(console, recommender.name, metrics)


def reasoning_folder(pass_k: int | None) -> str:
    """Where `eval --mode reasoning` writes under <bundle>/../eval: `reasoning`, or `reasoning_pass<K>`."""
    return "reasoning" if pass_k is None else f"reasoning_pass{pass_k}"


def _request_for_user(recommender, bundle: Path, user: str, split: Path | None):
    """(sample, seen items) of a dataset user, read from the split's per-user index."""
    from training.data.store import load_user_record, read_meta
    from training.inference import build_request, max_history
    from training.text import shorten

    dataset = recommender.manifest.get("dataset") or {}
    folder = split or Path(dataset.get("split_dir") or "")
    meta = read_meta(folder)
    if meta is None:
        raise FileNotFoundError(f"no split files at {folder or '(unknown)'}; give --split DIR (users need a split)")
    if meta.get("sha256") != dataset.get("split_sha256"):
        raise ValueError(f"the split at {folder} is not the one bundle {bundle} was trained on; give --split DIR")
    try:
        sequence, profile = load_user_record(folder, user)
    except KeyError:
        raise ValueError(f"unknown user {shorten(user)!r} (not in the split at {folder})") from None
    keep = max_history(recommender)
    return build_request(recommender.catalog, sequence, user, profile, keep), set(sequence)


@app.command("recommend")
def recommend_cmd(
    bundle: Path = typer.Option(..., help="bundle directory"),
    user: str | None = typer.Option(None, help="raw user id; history = the user's items in the split's user index"),
    history: str | None = typer.Option(None, help="comma-separated raw item ids (oldest first)"),
    k: int = typer.Option(10, "--k", "-k", min=1, max=100, help="how many items"),
    exclude_seen: bool = typer.Option(True, "--exclude-seen/--include-seen",
                                      help="never recommend the user's past items (masked inside the beam)"),
    split: Path | None = typer.Option(None, help="split folder for --user (default: the one the bundle names)"),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    beam_width: int | None = typer.Option(None, min=1, max=500, help="default: the bundle's"),
    mode: Mode = MODE_OPT, pass_k: int | None = PASS_K_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Top-k recommendations (with titles) for a dataset user or an explicit history, from the bundle alone.

    --mode reasoning also prints each chain of thought and its answer item.
    """
    import time

    if bool(user) == bool(history is not None):
        _fail("give exactly one of --user or --history")
    if pass_k is not None and mode is not Mode.reasoning:
        _fail("--pass-k needs --mode reasoning")
    started = time.perf_counter()
    with _clear_errors():
        from training.inference import build_request, load_recommender, max_history

        recommender = load_recommender(bundle, device, beam_width=beam_width, mode=mode.value, pass_k=pass_k)
        loaded = time.perf_counter()
        if user:
            sample, seen = _request_for_user(recommender, bundle, user, split)
        else:
            items = history.split(",")
            sample = build_request(recommender.catalog, items, keep=max_history(recommender))
            seen = {i.strip() for i in items}
        exclude = [seen] if exclude_seen else None
        reasoning = recommender.reason([sample], k, exclude)[0] if mode is Mode.reasoning else None
        ranked = list(reasoning.ranked) if reasoning else recommender.rank([sample], k, exclude=exclude)[0]
    timing = {"load": loaded - started, "request_and_rank": time.perf_counter() - loaded}
    print_recommendations(console, recommender, sample, ranked, exclude_seen, timing, as_json, reasoning)


@config_app.command("show")
def config_show(config: str = CONFIG_OPT, overrides: list[str] = OVERRIDES_ARG, as_json: bool = JSON_OPT) -> None:
    """Print the resolved config (preset + overrides, defaults filled in)."""
    import yaml

    cfg = _config(config, overrides)
    data = cfg.model_dump(mode="json")
    console.print_json(json.dumps(data)) if as_json else console.print(yaml.safe_dump(data, sort_keys=False))


@config_app.command("list")
def config_list() -> None:
    """List the presets shipped in training/configs/."""
    from training.config import list_presets

    for name in list_presets():
        console.print(name)


def _pretrained_fetchers() -> dict:
    """Model name -> `fetch(cache_dir, force=...) -> folder` for `models fetch`."""
    from training.models.smollm2 import fetch_smollm2

    return {"smollm2": fetch_smollm2}


@models_app.command("fetch")
def models_fetch(
    name: str = typer.Argument(..., help="model to fetch: smollm2"),
    cache_dir: Path | None = typer.Option(None, help="cache root (default $REASONREC_CACHE_DIR or ~/.cache/reasonrec)"),
    force: bool = typer.Option(False, help="download and convert again even if the converted folder is complete"),
) -> None:
    """Download a pretrained LLM's PyPI wheel, verify its checksum, convert it once; print the HF folder."""
    fetchers = _pretrained_fetchers()
    if name not in fetchers:
        _fail(f"unknown model {name[:40]!r}; choose one of {sorted(fetchers)}")
    with _clear_errors():
        try:
            folder = fetchers[name](cache_dir, force=force)
        except ImportError as err:
            raise RuntimeError(f"{err} (the GGUF conversion needs: pip install gguf accelerate)") from err
    console.print(str(folder), markup=False, highlight=False)


if __name__ == "__main__":
    app()
