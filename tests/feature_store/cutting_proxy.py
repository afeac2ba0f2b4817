"""A TCP proxy that cuts every connection after a byte budget: a pipeline that dies mid-way, on demand."""

from __future__ import annotations

import selectors
import socket
import threading


class CuttingProxy:
    """Relays 127.0.0.1:`.port` -> 127.0.0.1:`upstream_port`; each connection is cut after `budget` client bytes.

    At the cut the proxy half-closes the upstream side (FIN after the bytes it forwarded), so the server
    executes every complete command it got and drops the truncated one, and the client sees the
    connection die before its replies arrive.
    """

    def __init__(self, upstream_port: int, budget: int) -> None:
        self.upstream_port, self.budget = upstream_port, budget
        self.connections = 0
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        with client, upstream, selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ)
            selector.register(upstream, selectors.EVENT_READ)
            forwarded = 0
            while not self._stop.is_set() and forwarded < self.budget:
                for key, _ in selector.select(0.1):
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    if key.fileobj is upstream:
                        client.sendall(data)
                        continue
                    part = data[:self.budget - forwarded]
                    upstream.sendall(part)
                    forwarded += len(part)
            self._cut(client, upstream)

    @staticmethod
    def _cut(client: socket.socket, upstream: socket.socket) -> None:
        client.close()
        upstream.shutdown(socket.SHUT_WR)
        upstream.settimeout(2)
        try:
            while upstream.recv(65536):  # drain replies until the server closes, so no RST discards our bytes
                pass
        except OSError:
            pass
