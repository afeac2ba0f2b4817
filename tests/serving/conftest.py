"""Serving fixtures: a real redis-server per session (an empty database per test), tiny bundles per session."""

from __future__ import annotations

import pytest

from tests import redis_server as servers
from tests.serving.bundles import HashEncoder, write_policy_bundle, write_rechead_bundle
from tests.serving.fakes import make_settings, make_store

redis_server = servers.redis_server  # session fixture: one redis-server for the run
redis_url = servers.redis_url  # function fixture: an emptied database per test


@pytest.fixture(scope="session")
def hash_encoder() -> HashEncoder:
    return HashEncoder()


@pytest.fixture(scope="session")
def rechead_bundle(tmp_path_factory, hash_encoder):
    """A random Rechead bundle (cot=programmatic, d=16) over the 12-item tiny catalog."""
    return write_rechead_bundle(tmp_path_factory.mktemp("rechead") / "bundle", hash_encoder)


@pytest.fixture(scope="session")
def policy_bundle(tmp_path_factory):
    """A random tiny policy bundle (direct mode) over the same catalog (~10 s: build it once)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return write_policy_bundle(tmp_path_factory.mktemp("policy") / "bundle")
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def settings(redis_url, tmp_path):
    """Serve settings over this test's Redis database (test_reasoning and others define their own)."""
    return make_settings(redis_url, tmp_path)


@pytest.fixture
def store(settings):
    with make_store(settings) as s:
        yield s
