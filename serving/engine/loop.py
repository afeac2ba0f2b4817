"""The one event loop an asyncio engine lives on (vLLM's `AsyncLLM` binds its output tasks to a loop).

`AsyncLLM` starts its output-handler tasks on the loop of its first request and serves every later
request through them, so all its calls must come from that loop. `EngineLoop` holds it: the first async
caller's running loop (the app's, or a Ray Serve replica's), or, when sync code comes first
(`recommend_batch`, `warm`), a private loop in a daemon thread. Coroutines started from any other loop
hop onto the owner (`run`), and sync code waits on it from another thread (`run_sync`); blocking the
owner's own thread is refused rather than left to deadlock, and so is any call once the owner loop has
stopped (the engine's tasks died with it: build a new engine).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class EngineLoop:
    """Binds on first use; `run` from any loop, `run_sync` from any thread but the owner's."""

    def __init__(self, name: str = "engine-loop"):
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await `coro` on the owner loop (binding the running loop when none is bound yet)."""
        running = asyncio.get_running_loop()
        with self._lock:
            if self.loop is None:
                self.loop = running
        if self.loop is running:
            return await coro
        return await asyncio.wrap_future(self._submit(coro))

    def run_sync(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Block this thread until `coro` has run on the owner loop (a private one when none is bound)."""
        with self._lock:
            if self.loop is None:
                self._start_private()
        if _running_loop() is self.loop:
            coro.close()
            raise RuntimeError(f"{self.name}: a blocking call on the engine's own event loop would deadlock; "
                               "await the async method instead")
        return self._submit(coro).result(timeout_s)

    def close(self) -> None:
        """Stop the private loop, if this object started one (a borrowed loop is left alone)."""
        if self._thread is not None and self.loop is not None:
            if self.loop.is_running():  # let its tasks finish cancelling, so none is destroyed pending
                asyncio.run_coroutine_threadsafe(_cancel_pending(), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            self.loop.close()
            self._thread = None

    @property
    def private(self) -> bool:
        return self._thread is not None

    def _submit(self, coro: Coroutine[Any, Any, T]):
        if self.loop is None or not self.loop.is_running():
            coro.close()
            raise RuntimeError(f"{self.name}: the engine's event loop is not running")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def _start_private(self) -> None:
        loop = asyncio.new_event_loop()
        started = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(started.set)
            loop.run_forever()

        self._thread = threading.Thread(target=serve, name=self.name, daemon=True)
        self._thread.start()
        started.wait()
        self.loop = loop


async def _cancel_pending() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
