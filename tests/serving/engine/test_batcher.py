"""The micro-batcher: concurrent submits share one call; overload, timeout and errors stay contained."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from serving.engine.batcher import MicroBatcher, batch_wait_ms_for, expected_batch
from serving.errors import DependencyUnavailable, EngineOverloaded, EngineTimeout, http_status_of

pytestmark = pytest.mark.timeout(20)


def _recording(calls: list, fn=lambda x: x * 10):
    def batch_fn(items):
        calls.append(list(items))
        return [fn(x) for x in items]
    return batch_fn


def test_concurrent_submits_are_grouped_into_one_call():
    calls = []

    async def main():
        b = MicroBatcher(_recording(calls), max_batch_size=8, batch_wait_ms=50, max_queue=32)
        results = await asyncio.gather(*(b.submit(i, timeout_s=5) for i in range(5)))
        b.close()
        return results

    assert asyncio.run(main()) == [0, 10, 20, 30, 40]
    assert calls == [[0, 1, 2, 3, 4]]


def test_batches_never_exceed_max_batch_size_and_each_size_is_reported():
    calls, sizes = [], []

    async def main():
        b = MicroBatcher(_recording(calls), max_batch_size=3, batch_wait_ms=20, max_queue=32, on_batch=sizes.append)
        results = await asyncio.gather(*(b.submit(i, timeout_s=5) for i in range(7)))
        b.close()
        return results

    assert asyncio.run(main()) == [i * 10 for i in range(7)]
    assert [len(c) for c in calls] == [3, 3, 1] == sizes


def test_an_engine_beside_its_caller_gets_no_batch_wait():
    class Beside:
        overlaps_caller = True

    assert batch_wait_ms_for(Beside(), 10.0) == 0.0
    assert batch_wait_ms_for(object(), 10.0) == 10.0


def test_expected_batch_is_the_recent_peak_capped_and_at_least_one():
    assert [expected_batch(p, 8) for p in (0, 1, 5, 8, 30)] == [1, 1, 5, 8, 8]


def test_a_lone_client_never_waits_for_company():
    calls = []

    async def main():
        b = MicroBatcher(_recording(calls), max_batch_size=8, batch_wait_ms=2000, max_queue=32)
        started = time.perf_counter()
        for i in range(3):
            assert await b.submit(i, timeout_s=5) == i * 10
        b.close()
        return time.perf_counter() - started

    assert asyncio.run(main()) < 1.0  # a fixed 2 s window would hold each of the three
    assert calls == [[0], [1], [2]]


def test_a_closed_loop_of_clients_arriving_apart_fills_its_batches():
    calls = []

    def slow(items):
        time.sleep(0.1)
        return _recording(calls)(items)

    async def client(b, i: int):
        for _ in range(4):
            await asyncio.sleep(0.002 * i)  # answers go out one by one: the next requests arrive spread out
            await b.submit(i, timeout_s=5)

    async def main():
        b = MicroBatcher(slow, max_batch_size=8, batch_wait_ms=1000, max_queue=32)
        started = time.perf_counter()
        await asyncio.gather(*(client(b, i) for i in range(4)))
        b.close()
        return time.perf_counter() - started

    elapsed = asyncio.run(main())
    sizes = [len(c) for c in calls]
    # the first client runs alone, then every batch waits for the 4 it expects (not just the first to come);
    # the last holds those left when the first client has finished
    assert sizes[:4] == [1, 4, 4, 4] and sum(sizes) == 16, sizes
    assert elapsed < 2.5  # waiting for 8 (max_batch_size) would hold each of the 5 batches the whole 1 s


def test_a_full_queue_is_refused_at_once_with_retry_after():
    release = threading.Event()

    def slow(items):
        release.wait(5)
        return items

    async def main():
        b = MicroBatcher(slow, max_batch_size=1, batch_wait_ms=0, max_queue=2, retry_after_s=2.5)
        first = asyncio.ensure_future(b.submit("running", timeout_s=5))
        await asyncio.sleep(0.05)  # the worker holds it: the queue is empty again
        waiting = [asyncio.ensure_future(b.submit(i, timeout_s=5)) for i in range(2)]
        await asyncio.sleep(0.01)
        assert b.queue_depth == 2
        with pytest.raises(EngineOverloaded) as err:
            await b.submit("one too many", timeout_s=5)
        release.set()
        done = await asyncio.gather(first, *waiting)
        b.close()
        return err.value, done

    err, done = asyncio.run(main())
    assert done == ["running", 0, 1]
    assert http_status_of(err) == (503, err.detail, {"Retry-After": "3"})


def test_a_slow_batch_times_out_its_callers_on_time_and_the_worker_goes_on():
    release = threading.Event()
    calls = []

    def fn(items):
        calls.append(items)
        if items == ["slow"]:
            release.wait(5)
        return items

    async def main():
        b = MicroBatcher(fn, max_batch_size=1, batch_wait_ms=0, max_queue=8)
        start = time.perf_counter()
        with pytest.raises(EngineTimeout, match="within 0.1 s"):
            await b.submit("slow", timeout_s=0.1)
        waited = time.perf_counter() - start
        release.set()
        result = await b.submit("next", timeout_s=5)
        b.close()
        return waited, result

    waited, result = asyncio.run(main())
    assert waited < 1.0 and result == "next"


def test_an_error_fails_only_its_own_batch_and_exception_results_only_their_item():
    def fn(items):
        if "bad-batch" in items:
            raise ValueError("model exploded")
        return [ValueError(f"refused {x}") if x == "bad-item" else x for x in items]

    async def main():
        b = MicroBatcher(fn, max_batch_size=2, batch_wait_ms=30, max_queue=8)
        first = await asyncio.gather(b.submit("bad-batch", 5), b.submit("victim", 5), return_exceptions=True)
        second = await asyncio.gather(b.submit("ok", 5), b.submit("bad-item", 5), return_exceptions=True)
        b.close()
        return first, second

    first, second = asyncio.run(main())
    assert all(isinstance(r, ValueError) and "exploded" in str(r) for r in first)
    assert second[0] == "ok" and isinstance(second[1], ValueError) and "refused bad-item" in str(second[1])


def test_close_fails_waiting_items_and_later_submits():
    release = threading.Event()

    def slow(items):
        release.wait(5)
        return items

    async def main():
        b = MicroBatcher(slow, max_batch_size=1, batch_wait_ms=0, max_queue=8)
        running = asyncio.ensure_future(b.submit("running", timeout_s=5))
        await asyncio.sleep(0.05)
        waiting = asyncio.ensure_future(b.submit("waiting", timeout_s=5))
        await asyncio.sleep(0.01)
        b.close()
        release.set()
        results = await asyncio.gather(running, waiting, return_exceptions=True)
        with pytest.raises(DependencyUnavailable):
            await b.submit("late", timeout_s=1)
        return results

    results = asyncio.run(main())
    assert all(isinstance(r, DependencyUnavailable) for r in results)


def test_invalid_sizes_are_refused():
    with pytest.raises(ValueError):
        MicroBatcher(lambda x: x, max_batch_size=0)
