"""Ray Data shell of the nearline job: `map_batches` with a stateful vLLM actor (DESIGN.md §8, "Nearline on
Ray Data": ~0.98x raw vLLM generation, where `ray.data.llm` reached 0.44-0.77x on a CPU machine).

The logic lives in `nearline.py` and `reasoner.py`; this file only moves rows through Ray. The same code
runs on a laptop (`address=None` starts a local Ray) and on a cluster (`address="ray://..."` or "auto").
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from feature_store.nearline import Batch, NearlineSettings
from feature_store.reasoner import ReasonerActor, ReasonerSettings

ACTOR_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_HOST_IP": "127.0.0.1",
             "VLLM_NO_USAGE_STATS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def start_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Connects to `address`, or starts a local Ray (loopback, no dashboard) when it is None."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 _node_ip_address="127.0.0.1")


def actor_settings(settings: NearlineSettings, actor_cpus: int) -> ReasonerSettings:
    """Ray gives an actor OMP_NUM_THREADS=1; the actor's env and torch threads follow the CPUs it reserved
    (vLLM's CPU attention checks that its OpenMP thread count did not change since start-up)."""
    reasoner = settings.reasoner
    threads = reasoner.threads or actor_cpus
    return ReasonerSettings(reasoner.answer_k, reasoner.max_think_tokens, threads, reasoner.dtype,
                            reasoner.catalog_bundle)


def ray_runner(address: str | None = None, actor_cpus: int = 1):
    """A `Runner` (see nearline.run_job) that reasons through Ray Data with `settings.pool_size` vLLM actors."""

    def run(bundle_dir: str, settings: NearlineSettings, rows: list[dict[str, object]]) -> Iterator[Batch]:
        import ray.data

        start_ray(address)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        dataset = ray.data.from_items(rows, override_num_blocks=max(1, len(rows) // settings.chunk_size))
        reasoned = dataset.map_batches(
            ReasonerActor, batch_size=settings.chunk_size, batch_format="numpy",
            fn_constructor_kwargs={"model": str(bundle_dir), "settings": actor_settings(settings, actor_cpus)},
            compute=ray.data.ActorPoolStrategy(size=settings.pool_size), num_cpus=actor_cpus,
            runtime_env={"env_vars": {**ACTOR_ENV, "OMP_NUM_THREADS": str(actor_cpus)}})
        yield from reasoned.iter_batches(batch_size=None, batch_format="numpy")

    return run
