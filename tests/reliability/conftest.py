"""Reliability fixtures: one stack for the session (tiny bundles + a redis-server of its own, which scenarios kill).

The scenarios live in loadtests/reliability/ (the report script runs the same functions at full length); each
test here runs one, shortened, and asserts its checks. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import pytest

from feature_store.local_redis import redis_server_path


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """Bundles and a redis-server for every reliability test; torch on one thread meanwhile (2 shared cores)."""
    import torch

    from loadtests.reliability.harness import ENV, Stack

    if redis_server_path() is None:
        pytest.skip("redis-server is not on PATH (apt-get install -y redis-server, or `make test` installs it)")
    mp = pytest.MonkeyPatch()
    for name, value in ENV.items():
        mp.setenv(name, value)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    stack = Stack.create(tmp_path_factory.mktemp("reliability"))
    try:
        yield stack
    finally:
        stack.close()
        torch.set_num_threads(threads)
        mp.undo()

