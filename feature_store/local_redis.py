"""A throwaway redis-server on a free loopback port, for tests, benchmarks and `make demo`.

    with RedisServer() as server:
        FeatureStore(server.url)
        server.kill()      # SIGKILL, to test an outage
        server.restart()   # same port again

No persistence (`--save '' --appendonly no`): a restart starts empty.
The pytest fixtures over it live in `tests/redis_server.py`.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time

START_TIMEOUT_S = 5.0


def redis_server_path() -> str | None:
    """Path of `redis-server`, None when it is not installed."""
    return shutil.which("redis-server")


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports. The OS may hand the same ephemeral port to two separate `free_port` calls
    (each socket is closed before the next bind), and Ray refuses a port given to two of its components."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:  # all held open at once, so the OS cannot repeat a port
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def ping(port: int, timeout_s: float = 0.2) -> bool:
    """True when a Redis server on 127.0.0.1:`port` answers PING with PONG."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A redis-server subprocess on 127.0.0.1:<free port>; `.url`, `.port`, `.stop()`, `.kill()`, `.restart()`."""

    def __init__(self, port: int | None = None) -> None:
        path = redis_server_path()
        if path is None:
            raise FileNotFoundError("redis-server is not on PATH (apt-get install -y redis-server)")
        self._path = path
        self.port = port or free_port()
        self._process: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile()
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it answers PING (at most 5 s)."""
        command = [self._path, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                   "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"]
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if ping(self.port):
                return
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server on port {self.port} exited: {self.log_tail()}")
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"redis-server on port {self.port} did not answer PING within {START_TIMEOUT_S} s")

    def log_tail(self, chars: int = 500) -> str:
        """The end of the server's output (warnings and errors)."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace").strip()[-chars:]

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        """SIGTERM, wait up to 5 s, then SIGKILL."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL at once (an outage, as a crash would cause)."""
        self._end(signal.SIGKILL)

    def restart(self) -> None:
        """Stop and start again on the same port (empty, no persistence)."""
        self.stop()
        self.start()

    def _end(self, sig: signal.Signals) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> RedisServer:
        return self

    def close(self) -> None:
        """Stop the server and drop its log."""
        self.stop()
        self._log.close()

    def __exit__(self, *exc: object) -> None:
        self.close()


def flush_all(port: int) -> None:
    """FLUSHALL on the server at 127.0.0.1:`port` (raises OSError when it does not answer +OK)."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"FLUSHALL\r\n")
        if not sock.recv(64).startswith(b"+OK"):
            raise OSError(f"FLUSHALL failed on port {port}")
