"""`reasonrec serve`: the Ray Serve application on this machine (loopback by default) until Ctrl-C."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import typer
from rich.console import Console

console = Console(stderr=True)


def serve_command(
    config: Path = typer.Option(Path("deploy/serve.yaml"), "--config", "-c", help="serve config YAML"),
    overrides: list[str] = typer.Argument(None, help="overrides such as port=8001 bundles.sft=runs/x/bundle"),
    num_cpus: int = typer.Option(0, "--num-cpus", min=0, help="CPUs of the local Ray (0: all)"),
    replicas: int = typer.Option(1, "--replicas", min=1, help="replicas of the app (each loads its models)"),
    replica_cpus: float = typer.Option(1.0, "--replica-cpus", min=0.1, help="CPUs (torch threads) per replica"),
    engine_cpus: float = typer.Option(1.0, "--engine-cpus", min=0.1,
                                      help="CPUs per engine replica, with engine.replicas=N (engines in their own "
                                           "deployment)"),
    ray_address: str = typer.Option("", "--ray-address",
                                    help="Ray cluster to deploy on (e.g. 127.0.0.1:6379); empty: RAY_ADDRESS, "
                                         "else a local Ray"),
) -> None:
    """Start Redis-backed serving: POST /v1/recommend, /v1/feedback, GET /v1/models, /readyz, /metrics, /docs."""
    from serving.settings import ServeSettings
    from training.config import ConfigError

    try:
        settings = ServeSettings.from_yaml(config, list(overrides or []))
    except ConfigError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(1) from None
    from serving import deployments

    try:
        url = deployments.start(settings, num_cpus or None, replicas, replica_cpus, address=ray_address or None,
                                engine_cpus=engine_cpus)
    except RuntimeError as err:  # Serve reports a replica that failed to start as a RuntimeError
        console.print(f"[red]error:[/red] the service did not start: {str(err).splitlines()[0]}")
        deployments.stop()
        raise typer.Exit(1) from None
    console.print(f"reasonrec serving at {url} (docs: {url}/docs); Ctrl-C stops it")
    for replica_url in deployments.replica_urls(settings):
        console.print(f"  direct ingress (no proxy hop): {replica_url}")
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    console.print("stopping ...")
    deployments.stop()
