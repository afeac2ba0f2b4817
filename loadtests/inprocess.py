"""The in-process side of the serving benchmark: the three scenarios' models loaded in the benchmark process
(`NativeDirectEngine` behind a `MicroBatcher` with the serve settings' batching, a second `VLLMDirectEngine`,
`ReasoningService` over Redis and FAISS), the call the pipeline would make for each scenario, and one timed
closed-loop run of them (`run_inprocess`: samples, CPU seconds of this process and its vLLM child, the native
engine's mean batch). The HTTP numbers of loadtests/run.py are compared with these.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from loadtests.measure import BenchLoop, Sample, closed_loop, cpu_seconds, machine_busy_s


@dataclass
class InProcess:
    """The models of the three scenarios, loaded in this process, and the calls the pipeline would make."""

    settings: object
    native: object
    vllm: object
    reasoning: object
    batcher: object = None
    engine_children: list = field(default_factory=list)
    k: int = 10
    batch_sizes: list = field(default_factory=list)  # of the native engine's batches, reset per run

    async def start(self) -> None:
        from serving.engine.batcher import MicroBatcher

        s = self.settings.engine
        def recommend_batch(queries):
            self.batch_sizes.append(len(queries))
            return self.native.recommend_batch(queries)

        self.batcher = MicroBatcher(recommend_batch, s.max_batch_size, s.batch_wait_ms, s.max_queue,
                                    s.retry_after_s, name="native-inprocess")
        if self.vllm is not None:  # binds the AsyncLLM to the bench loop, as warm_async does in the replica
            await self.vllm.warm_async()

    def call(self, scenario: str) -> Callable[[object], Awaitable[bool | None]]:
        timeout = self.settings.request_timeout_s
        if scenario == "direct_native":
            async def native(query):
                await self.batcher.submit(query, timeout)
            return native
        if scenario == "direct_vllm":
            async def vllm(query):
                await asyncio.wait_for(self.vllm.recommend(query), timeout)
            return vllm

        async def reasoning(user_id):
            result = await asyncio.wait_for(self.reasoning.recommend(user_id, None, self.k, True, "direct", False),
                                            timeout)
            return result.path == "cached_vector"
        return reasoning

    def processes(self) -> list:
        import psutil

        return [psutil.Process(), *self.engine_children]

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
        if self.vllm is not None:
            self.vllm.shutdown()
            self.vllm = None


def run_inprocess(bench: BenchLoop, models: InProcess, scenario: str, users: int, inputs: list,
                  args: argparse.Namespace) -> tuple[list[Sample], dict, list[str]]:
    """One closed-loop run of `scenario` with `users` clients for --inprocess-duration s: its samples, CPU seconds
    of this process and its vLLM child (`driver`), of the machine, wall seconds (and the native mean batch), and
    the errors' messages."""
    time.sleep(args.settle)
    procs = models.processes()
    models.batch_sizes.clear()
    cpu0, machine0, wall0 = cpu_seconds(procs), machine_busy_s(), time.perf_counter()
    samples, failures = bench.run(closed_loop(models.call(scenario), inputs, users, args.inprocess_duration,
                                              args.seed + users), timeout_s=args.inprocess_duration + 120)
    cpu = {"driver": cpu_seconds(procs) - cpu0, "machine": machine_busy_s() - machine0,
           "wall": time.perf_counter() - wall0}
    if scenario == "direct_native" and models.batch_sizes:
        cpu["mean_batch"] = round(sum(models.batch_sizes) / len(models.batch_sizes), 2)
    return samples, cpu, failures
