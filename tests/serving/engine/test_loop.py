"""EngineLoop: one owner loop per engine, reached from sync code, from the owner, and from other loops."""

from __future__ import annotations

import asyncio
import threading

import pytest

from serving.engine.loop import EngineLoop

pytestmark = pytest.mark.timeout(30)


async def _where() -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    await asyncio.sleep(0)
    return asyncio.get_running_loop(), threading.current_thread()


def test_sync_first_starts_a_private_loop_that_other_loops_hop_onto():
    owner = EngineLoop("t")
    loop, thread = owner.run_sync(_where())
    assert owner.private and loop is owner.loop and thread is not threading.current_thread()
    assert asyncio.run(owner.run(_where())) == (loop, thread)  # from another loop: runs on the owner
    owner.close()
    assert loop.is_closed()
    with pytest.raises(RuntimeError, match="not running"):
        owner.run_sync(_where())


def test_the_first_async_caller_owns_the_engine_and_may_not_block_on_it():
    owner = EngineLoop("t")

    async def main():
        here = await owner.run(_where())
        with pytest.raises(RuntimeError, match="deadlock"):
            owner.run_sync(_where())
        return here

    loop, thread = asyncio.run(main())
    assert loop is owner.loop and thread is threading.current_thread() and not owner.private
    owner.close()  # a borrowed loop is not ours to close
