import socket

import pytest

from feature_store.local_redis import free_ports

pytestmark = pytest.mark.timeout(30)


def test_free_ports_are_distinct_and_bindable():
    ports = free_ports(64)
    assert len(set(ports)) == 64
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
