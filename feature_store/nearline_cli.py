"""`reasonrec nearline run`: write users' chains of thought into the feature store (local Ray or a cluster)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer

from feature_store.cli import NAMESPACE_OPT, URL_OPT, _fail, _store, console
from feature_store.nearline import NearlineSettings, local_runner, run_job
from feature_store.reasoner import ReasonerSettings

nearline_app = typer.Typer(name="nearline", help="Nearline CoT generation into the feature store.",
                           no_args_is_help=True)


@nearline_app.command()
def run(bundle: Path = typer.Option(..., "--bundle", help="policy bundle trained with reasoning.enabled=true, "
                                    "or an HF chat LLM folder (with --catalog-bundle)"),
        catalog_bundle: Path = typer.Option(None, "--catalog-bundle",
                                            help="with an LLM folder as --bundle: the bundle whose catalog it "
                                                 "recommends from (e.g. runs/sft/bundle)"),
        users: str = typer.Option("changed", "--users",
                                  help="changed | all | queue (users serving queued) | a file of user ids"),
        job_id: str = typer.Option(..., "--job-id", help="rerun with the same id to resume a stopped job"),
        ray_address: str = typer.Option("", "--ray-address", help="Ray cluster address; empty: start a local Ray"),
        runner: str = typer.Option("ray", "--runner", help="ray (Ray Data + vLLM actors) | local (one process)"),
        chunk_size: int = typer.Option(256, "--chunk-size", min=1, help="users per checkpointed chunk"),
        pool_size: int = typer.Option(1, "--pool-size", min=1, help="vLLM actors"),
        actor_cpus: int = typer.Option(1, "--actor-cpus", min=1, help="CPUs (and torch threads) per actor"),
        answer_k: int = typer.Option(10, "--answer-k", min=1, max=100, help="items kept per answer"),
        max_think_tokens: int = typer.Option(0, "--max-think-tokens", min=0, help="0: the bundle's setting"),
        rechead: Path = typer.Option(None, "--rechead", help="Rechead bundle: also cache the users' vectors"),
        url: str = URL_OPT, namespace: str = NAMESPACE_OPT,
        as_json: bool = typer.Option(False, "--json", help="print the summary as JSON")) -> None:
    """Select users, reason over them with vLLM in chunks, write Redis; resumable by --job-id."""
    from training.bundle import BundleError

    if runner not in ("ray", "local"):
        _fail(f"--runner must be ray or local, got {runner!r}", code=1)
    marker = "config.json" if catalog_bundle else "manifest.json"
    if not (bundle / marker).is_file():
        what = "LLM folder" if catalog_bundle else "bundle"
        _fail(f"no {what} at {bundle} ({marker} missing)", code=1)
    if catalog_bundle and not (catalog_bundle / "catalog.json").is_file():
        _fail(f"no bundle catalog at {catalog_bundle} (catalog.json missing)", code=1)
    settings = NearlineSettings(chunk_size, pool_size, ReasonerSettings(
        answer_k, max_think_tokens or None, catalog_bundle=str(catalog_bundle) if catalog_bundle else None))
    if runner == "ray":
        from feature_store.nearline_ray import ray_runner

        chosen = ray_runner(ray_address or None, actor_cpus)
    else:
        chosen = local_runner
    with _store(url, namespace) as store:
        try:
            summary = run_job(store, str(bundle), job_id, users, chosen, settings)
            vectors = cache_user_vectors(store, rechead, job_id) if rechead else None
        except (BundleError, ValueError) as err:
            _fail(str(err).splitlines()[0], code=1)
    if as_json:
        console.print_json(json.dumps(asdict(summary) | {"vectors_written": vectors}))
        return
    console.print(f"job {summary.job_id}: {summary.users} users in {summary.chunks} chunks "
                  f"({summary.chunks_skipped} already done) in {summary.seconds:.1f} s — "
                  f"{summary.users_per_s:.1f} users/s, {summary.tokens_per_s:.0f} CoT tokens/s, "
                  f"unclosed CoTs {summary.unclosed_rate:.1%}, empty answers {summary.empty_answer_rate:.1%}")
    if vectors is not None:
        console.print(f"user vectors cached for {vectors} users (Rechead {rechead})")


def cache_user_vectors(store, rechead: Path, job_id: str) -> int:
    """The Rechead's user vectors of the job's users, written next to their CoTs (the reasoning cached path)."""
    from feature_store.checkpoints import JobCheckpoints
    from serving.reasoning import ReasoningService

    chunks = json.loads((JobCheckpoints(store, job_id).meta() or {}).get("chunks", "[]"))
    service = ReasoningService.from_bundle(rechead, store)
    return service.compute_user_vectors(store, [user for chunk in chunks for user in chunk])
