"""`reasonrec store …`: inspect, load and purge the Redis feature store.

Every command takes `--url` (default: $REASONREC_REDIS_URL, else redis://127.0.0.1:6379/0) and
`--namespace`. Redis down -> one red line on stderr and exit code 2; bad input -> one line and exit 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from feature_store.errors import StoreError, StoreUnavailable
from feature_store.schema import decode_history
from feature_store.store import FeatureStore

DEFAULT_URL = "redis://127.0.0.1:6379/0"
store_app = typer.Typer(name="store", help="Inspect, load and purge the Redis feature store.", no_args_is_help=True)
_PIPE = not sys.stdout.isatty()
console = Console(soft_wrap=_PIPE, width=200 if _PIPE else None)
err_console = Console(stderr=True, soft_wrap=True)
URL_OPT = typer.Option(DEFAULT_URL, "--url", envvar="REASONREC_REDIS_URL", help="Redis URL")
NAMESPACE_OPT = typer.Option("reasonrec", "--namespace", help="key prefix of this store")
JSON_OPT = typer.Option(False, "--json", help="print one JSON object instead of tables")


def _fail(message: str, code: int) -> None:
    err_console.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    raise typer.Exit(code)


@contextmanager
def _store(url: str, namespace: str) -> Iterator[FeatureStore]:
    """An open store; StoreUnavailable -> exit 2, bad input -> exit 1, each as one red line."""
    from training.data.store import SplitIntegrityError

    try:
        with FeatureStore(url, namespace) as store:
            yield store
    except StoreUnavailable as err:
        _fail(str(err), code=2)
    except (StoreError, SplitIntegrityError, FileNotFoundError) as err:
        _fail(str(err).splitlines()[0], code=1)


@store_app.command()
def stats(url: str = URL_OPT, namespace: str = NAMESPACE_OPT, as_json: bool = JSON_OPT) -> None:
    """Users, users with a CoT, jobs, schema version, TTL and Redis memory."""
    with _store(url, namespace) as store:
        data = store.stats()
    if as_json:
        console.print_json(json.dumps(data))
        return
    table = Table(title=f"feature store {namespace} at {store.url}")
    table.add_column("stat")
    table.add_column("value", justify="right")
    for key, value in data.items():
        table.add_row(key, str(value))
    console.print(table)


@store_app.command()
def get(user: str = typer.Argument(..., help="raw user id"), url: str = URL_OPT, namespace: str = NAMESPACE_OPT,
        as_json: bool = JSON_OPT) -> None:
    """Every stored field of one user (exit 1 when the user has no row)."""
    with _store(url, namespace) as store:
        row = store.read([user])[0]
    if row is None:
        _fail(f"user {user!r} has no row in namespace {namespace!r}", code=1)
    if as_json:
        console.print_json(json.dumps(row))
        return
    table = Table(title=f"user {user}")
    table.add_column("field")
    table.add_column("value", overflow="fold")
    for field, value in row.items():
        table.add_row(field, _shown(field, value))
    console.print(table)


def _shown(field: str, value: str) -> str:
    """A history as space-separated item ids (as stored when it is not a JSON list); other fields as they are."""
    if field != "history":
        return value
    try:
        return " ".join(decode_history(value))
    except StoreError:
        return value


@store_app.command()
def purge(url: str = URL_OPT, namespace: str = NAMESPACE_OPT,
          yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation")) -> None:
    """Delete every key of the namespace (other namespaces stay)."""
    if not yes:
        typer.confirm(f"delete every key of namespace {namespace!r} at {url}?", abort=True)
    with _store(url, namespace) as store:
        deleted = store.purge()
    console.print(f"deleted {deleted} keys of namespace {namespace}")


@store_app.command("load-histories")
def load_histories(split_dir: Path = typer.Option(..., "--split-dir", help="a split folder (`reasonrec data split`)"),
                   part: str = typer.Option("train", "--part", help="train: training interactions; full: all"),
                   updated_at: float | None = typer.Option(None, "--updated-at", help="timestamp of the rows; default: "
                                                    "the split's meta.json mtime, so a reload is a no-op"),
                   url: str = URL_OPT, namespace: str = NAMESPACE_OPT) -> None:
    """Write each user's history from a split folder."""
    from feature_store.materialize import histories_from_split, materialize_histories

    with _store(url, namespace) as store:
        stamp = updated_at if updated_at is not None else (split_dir / "meta.json").stat().st_mtime
        result = materialize_histories(store, histories_from_split(split_dir, part), stamp,
                                       progress=sys.stderr.isatty())
    console.print(f"histories of {result.written + result.stale} users from {split_dir} ({part}): "
                  f"{result.written} written, {result.stale} already as new")
