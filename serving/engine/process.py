"""The native engine in a child process of its replica (`engine.process: true`): the beam search gets a core of its own.

    replica (HTTP, app, batcher)                       child: python -m serving.engine.process
    ProcessDirectEngine.recommend_batch(queries) --pipe--> NativeDirectEngine.recommend_batch(queries)
                        <- one result per query (items, or RequestInvalid) --

Why: in one process the HTTP server, the app and the beam search's Python loop share one GIL, so a request's
HTTP work waits for the search and the search for it (measured: 16.9 ms of CPU per request over HTTP vs 11.7 ms
in-process at 8 users, `reports/serving_direct_ingress.md`). With the search in a child, the replica parses and
answers requests while the child searches the next batch, and the two use two cores. The batcher must then not
wait for the company it expects: a batch starts as soon as the child is free, with whatever arrived meanwhile
(`overlaps_caller`), so the answers of one batch go out while the next is searched.

The child is started with `subprocess` (not `multiprocessing`, whose spawn re-imports the parent's main module:
a Ray worker's), talks over a socket pair with `multiprocessing.connection` framing (pickle), and loads the bundle
itself; the parent holds only the catalog (the pipeline checks histories against it). A child that dies fails the
batch in flight with 503 and is started again on the next batch. `shutdown` stops it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path

from serving.engine import DirectQuery, ScoredItem
from serving.errors import DependencyUnavailable, RequestInvalid

log = logging.getLogger(__name__)
START_TIMEOUT_S = 300.0
FD_ENV = "REASONREC_ENGINE_FD"


class EngineProcessError(RuntimeError):
    """The child could not load the bundle (the message names the child's error) or did not start in time."""


class ProcessDirectEngine:
    """`NativeDirectEngine.from_bundle(**options)` in a child process, behind the same `DirectEngine` contract."""

    overlaps_caller = True  # the batcher starts a batch as soon as the engine is free (see module docstring)

    def __init__(self, bundle_dir: str | Path, device: str = "cpu", beam_width: int | None = None,
                 expected_version: str | None = None, drop_unknown: bool = False, torch_threads: int = 1,
                 start_timeout_s: float = START_TIMEOUT_S):
        from training.bundle import load_bundle_catalog

        self.options = {"bundle_dir": str(bundle_dir), "device": device, "beam_width": beam_width,
                        "expected_version": expected_version, "drop_unknown": drop_unknown}
        self.torch_threads, self.start_timeout_s = torch_threads, start_timeout_s
        self._lock = threading.Lock()  # one batch on the wire at a time
        self._proc: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self._closed = False
        self._seq = 0  # of the last message sent; the child answers (seq, status, value)
        self._facts = self._start()
        self.catalog = load_bundle_catalog(Path(bundle_dir))

    @classmethod
    def from_bundle(cls, bundle_dir: str | Path, device: str = "cpu", beam_width: int | None = None,
                    expected_version: str | None = None, drop_unknown: bool = False) -> ProcessDirectEngine:
        return cls(bundle_dir, device, beam_width, expected_version, drop_unknown)

    @property
    def bundle_version(self) -> str:
        return str(self._facts.get("bundle_version", "unknown"))

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def recommend_batch(self, queries: Sequence[DirectQuery]) -> list[list[ScoredItem] | RequestInvalid]:
        """Per query: up to k (item, title, log P) best first, or RequestInvalid; DependencyUnavailable when the
        child died (it is restarted for the next batch)."""
        return self._call("batch", list(queries))

    def describe(self) -> dict:
        return {**self._facts, "engine": "native", "process": self.pid}

    def warm(self) -> None:
        self._call("warm", None)

    def shutdown(self) -> None:
        """Stop the child (idempotent); later calls get DependencyUnavailable."""
        self._closed = True
        with self._lock:
            self._stop()

    async def recommend_batch_async(self, queries: Sequence[DirectQuery]) -> list[list[ScoredItem] | RequestInvalid]:
        """`recommend_batch` that waits for the child's answer on the running event loop (no thread, so no GIL
        hand-off between a waiting thread and the loop); when another call holds the pipe or the child must be
        (re)started, the blocking call runs in a thread instead."""
        if not self._lock.acquire(blocking=False):
            return await asyncio.to_thread(self.recommend_batch, queries)
        reply = None
        try:
            if self._conn is not None and not self._closed:
                seq = self._send("batch", list(queries))
                while not self._conn.poll():
                    await _readable(self._conn)
                reply = self._receive(seq)
        finally:
            self._lock.release()
        if reply is None:  # shut down (-> its refusal) or to be restarted: the blocking path does either
            return await asyncio.to_thread(self.recommend_batch, queries)
        return self._value(reply)

    def _call(self, op: str, payload: object):
        with self._lock:
            if self._closed:
                raise DependencyUnavailable("engine", "the engine is shut down")
            if self._conn is None:
                self._facts = self._start()
            reply = self._receive(self._send(op, payload))
        return self._value(reply)

    def _send(self, op: str, payload: object) -> int:
        self._seq += 1
        try:
            self._conn.send((self._seq, op, payload))
        except OSError as err:
            self._died(err)
        return self._seq

    def _receive(self, seq: int) -> tuple[str, object]:
        """The child's (status, value) for message `seq`; answers to earlier messages (a caller that was cancelled
        while waiting) are read and dropped."""
        try:
            while True:
                answered, status, value = self._conn.recv()
                if answered == seq:
                    return status, value
        except (EOFError, OSError) as err:
            self._died(err)

    def _died(self, err: Exception):
        code = self._stop()
        raise DependencyUnavailable("engine", f"the engine process exited (code {code}); "
                                              "it restarts with the next batch") from err

    @staticmethod
    def _value(reply: tuple[str, object]):
        status, value = reply
        if status == "error":
            raise DependencyUnavailable("engine", value)
        return value

    def _start(self) -> dict:
        """Start the child, wait for its ("ready", facts) or its error; EngineProcessError otherwise."""
        ours, theirs = socket.socketpair()
        env = {**os.environ, FD_ENV: str(theirs.fileno()), "HF_HUB_OFFLINE": "1",
               "OMP_NUM_THREADS": str(self.torch_threads)}
        self._proc = subprocess.Popen([sys.executable, "-m", "serving.engine.process"], env=env,
                                      pass_fds=(theirs.fileno(),), stdin=subprocess.PIPE)
        theirs.close()
        self._conn = Connection(ours.detach())
        self._conn.send({**self.options, "torch_threads": self.torch_threads})
        reply = self._await_ready()
        if reply[0] != "ready":
            self._stop()
            raise EngineProcessError(f"the engine process failed to load {self.options['bundle_dir']}: {reply[1]}")
        log.info("engine process %s serving %s", self._proc.pid, self.options["bundle_dir"])
        return reply[1]

    def _await_ready(self) -> tuple[str, object]:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._conn.poll(0.2):
                try:
                    return self._conn.recv()
                except EOFError:
                    break
            if self._proc.poll() is not None:
                break
        code = self._proc.poll()
        return ("failed", f"exited with code {code}" if code is not None
                else f"not ready within {self.start_timeout_s:g} s")

    def _stop(self) -> int | None:
        """Close the pipe and end the child (it exits when its stdin closes; killed after 5 s)."""
        proc, conn, self._proc, self._conn = self._proc, self._conn, None, None
        if conn is not None:
            conn.close()
        if proc is None:
            return None
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            return proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(5)


def serve_child(conn: Connection) -> None:
    """The child's loop: load the engine from the first message, answer ("batch" | "warm", payload) messages
    with ("ok", value) or ("error", message) until the parent closes the pipe."""
    try:
        engine = _load_engine(conn.recv())
        engine.warm()
    except Exception as err:  # noqa: BLE001 - the parent reports it as the arm's load error
        conn.send(("failed", f"{type(err).__name__}: {err}"))
        return
    conn.send(("ready", engine.describe()))
    while True:
        try:
            seq, op, payload = conn.recv()
        except EOFError:
            return
        conn.send((seq, *_answer(engine, op, payload)))


def _load_engine(options: dict):
    import torch

    from serving.engine.native import NativeDirectEngine

    torch.set_num_threads(int(options.pop("torch_threads", 1)))
    return NativeDirectEngine.from_bundle(**options)


def _answer(engine, op: str, payload: object) -> tuple[str, object]:
    try:
        if op == "batch":
            return "ok", engine.recommend_batch(payload)
        if op == "warm":
            return "ok", engine.warm()
        return "error", f"unknown engine operation {op!r}"
    except Exception as err:  # noqa: BLE001 - the batch's callers get it (503), the child goes on
        return "error", f"{type(err).__name__}: {err}"


async def _readable(conn: Connection) -> None:
    """Until `conn` has data (or its peer closed it), without blocking the event loop."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_reader(conn.fileno(), lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_reader(conn.fileno())


def _watch_parent() -> None:
    """Exit when the parent's end of our stdin closes (the parent stopped us, or died)."""
    def watch() -> None:
        sys.stdin.buffer.read()
        os._exit(0)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


if __name__ == "__main__":
    _watch_parent()
    serve_child(Connection(int(os.environ[FD_ENV])))
