"""`reasonrec ab report`: the A/B readout of one experiment from the feedback log(s).

    reasonrec ab report --experiment mode_ab --config deploy/serve.yaml \
        [--log runs/serve/feedback.jsonl ...] [--control direct] [--next data/splits/ml-100k-temporal] \
        [--out reports/ab_readout]

--log defaults to the config's feedback_log; "redis" reads the config's Redis stream. Writes <out>.md,
<out>.json (REPORTS.md shape) and <out>_ctr.png. Exit codes: 0 done, 1 bad input, 2 Redis unreachable,
3 the SRM check failed and --fail-on-srm was given.
"""

from __future__ import annotations

import math
import shlex
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from serving.abtest.readout import Readout

ab_app = typer.Typer(name="ab", help="A/B experiment readouts from the feedback log.", no_args_is_help=True)
_PIPE = not sys.stdout.isatty()
console = Console(soft_wrap=_PIPE, width=200 if _PIPE else None)
err_console = Console(stderr=True, soft_wrap=True)


@ab_app.callback()
def _group() -> None:
    """A/B experiment readouts from the feedback log (a callback keeps `report` a subcommand)."""


def _fail(message: str, code: int) -> None:
    err_console.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    raise typer.Exit(code)


def _signed(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:+.3f}"


def _print_summary(readout: Readout) -> None:
    table = Table(title=f"experiment {readout.experiment} (control {readout.control})")
    for column in ("arm", "users", "exposures", "clicks", "CTR [95 %]", "lift [95 %]"):
        table.add_column(column, justify="left" if column == "arm" else "right")
    for a in readout.arms:
        ctr = "–" if a.exposures == 0 else f"{a.ctr:.4f} [{a.ctr_ci[0]:.4f}, {a.ctr_ci[1]:.4f}]"
        lift = "control" if a.lift is None else f"{_signed(a.lift.lift)} [{_signed(a.lift.lo)}, {_signed(a.lift.hi)}]"
        table.add_row(a.name, str(a.users), str(a.exposures), str(a.clicks), ctr, lift)
    console.print(table)
    srm = readout.srm
    if srm is None:
        console.print("SRM: no users")
    else:
        verdict = "pass" if srm.passed else "[red]FAIL (sample ratio mismatch)[/red]"
        console.print(f"SRM: chi2 {srm.chi2:.3f}, dof {srm.dof}, p {srm.p_value:.3g}: {verdict}", highlight=False)


def _load(config: Path, experiment: str, logs: list[str], control: str | None, next_path: Path | None,
          options: dict) -> Readout:
    """Settings, events and the readout; raises ConfigError / ValueError / OSError / StoreUnavailable."""
    from feature_store.store import FeatureStore
    from serving.abtest.events import normalise_rows, read_rows
    from serving.abtest.readout import ReadoutOptions, build_readout, control_of, experiment_of
    from serving.abtest.replay import read_next_items
    from serving.settings import ServeSettings

    settings = ServeSettings.from_yaml(config)
    exp = experiment_of(settings, experiment)
    control_of(exp, control)
    sources = logs or [settings.feedback_log]
    store = None
    if "redis" in sources:
        store = FeatureStore(settings.redis_url, settings.namespace, timeout_s=settings.redis_timeout_s * 8,
                             retries=settings.redis_retries)
    try:
        events, dropped = normalise_rows(read_rows(sources, store))
    finally:
        if store is not None:
            store.close()
    if not events:
        raise ValueError(f"no exposure or click event in {sources}")
    next_items = read_next_items(next_path) if next_path else None
    return build_readout(events, exp, ReadoutOptions(control=control, **options), next_items, dropped)


def _command(experiment: str, config: Path, options: list[tuple[str, object]]) -> str:
    """The command line of this readout, as the report records it (options left at None are left out)."""
    args = ["reasonrec", "ab", "report", "--experiment", experiment, "--config", str(config)]
    return shlex.join(args + [part for flag, value in options if value is not None for part in (flag, str(value))])


@ab_app.command()
def report(
    experiment: str = typer.Option(..., "--experiment", "-e", help="experiment name in the serve config"),
    config: Path = typer.Option(Path("deploy/serve.yaml"), "--config", "-c", help="serve config YAML"),
    log: list[str] = typer.Option(None, "--log", help='feedback JSONL path or "redis"; repeat for several '
                                  "(default: the config's feedback_log)"),
    control: str | None = typer.Option(None, "--control", help="control arm (default: the experiment's first)"),
    next_path: Path | None = typer.Option(None, "--next", help="held-out next interactions for the offline "
                                          "replay: JSONL {user_id, item_id|target} or a split folder"),
    k: list[int] = typer.Option([10], "--k", min=1, help="replay cut-offs (repeatable)"),
    srm_alpha: float = typer.Option(0.001, "--srm-alpha", min=0.0, max=1.0, help="SRM fails when p < this"),
    bootstrap: int = typer.Option(0, "--bootstrap", min=0, help="user-bootstrap resamples of the lift (0: none)"),
    seed: int = typer.Option(0, "--seed", help="bootstrap seed"),
    out: Path = typer.Option(Path("reports/ab_readout"), "--out", help="writes <out>.md, <out>.json, <out>_ctr.png"),
    fail_on_srm: bool = typer.Option(False, "--fail-on-srm", help="exit 3 when the SRM check fails"),
) -> None:
    """Per-arm CTR with Wilson intervals, lift vs the control, SRM check, optional offline replay."""
    from feature_store.errors import StoreError, StoreUnavailable
    from serving.abtest.report import write_readout
    from training.config import ConfigError

    options = {"srm_alpha": srm_alpha, "ks": tuple(k), "bootstrap": bootstrap, "seed": seed}
    try:
        readout = _load(config, experiment, list(log or []), control, next_path, options)
    except StoreUnavailable as err:
        _fail(str(err), code=2)
    except (ConfigError, StoreError, ValueError, OSError) as err:
        _fail(str(err).splitlines()[0], code=1)
    _print_summary(readout)
    flags = [*(("--log", source) for source in log or []), ("--control", control), ("--next", next_path),
             *(("--k", cut) for cut in k), ("--srm-alpha", srm_alpha),
             ("--bootstrap", bootstrap or None), ("--seed", seed if bootstrap else None), ("--out", out)]
    md, js, png = write_readout(readout, out, _command(experiment, config, flags))
    console.print(f"wrote {md}, {js}" + (f", {png}" if png else ""), highlight=False)
    if fail_on_srm and readout.srm is not None and not readout.srm.passed:
        raise typer.Exit(3)
