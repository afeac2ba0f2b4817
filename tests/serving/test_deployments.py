"""The admin guard of the Ray Serve shell (no Ray started)."""

from __future__ import annotations

import pytest

from serving.deployments import admin_refusal


def scope(client: str, authorization: str | None = None) -> dict:
    headers = [(b"authorization", authorization.encode())] if authorization else []
    return {"client": (client, 5000), "headers": headers}


@pytest.mark.timeout(30)
def test_without_a_token_only_loopback_clients_may_reload():
    assert admin_refusal(scope("127.0.0.1"), "") is None
    assert admin_refusal(scope("::1"), "") is None
    status, reason = admin_refusal(scope("10.0.0.7"), "")
    assert status == 403 and "loopback" in reason


@pytest.mark.timeout(30)
def test_with_a_token_every_client_needs_it_and_a_wrong_one_is_refused():
    assert admin_refusal(scope("10.0.0.7", "Bearer s3cret"), "s3cret") is None
    for given in (None, "Bearer wrong", "s3cret", "Bearer s3cret "):
        status, reason = admin_refusal(scope("127.0.0.1", given), "s3cret")
        assert status == 401 and "s3cret" not in reason


@pytest.mark.timeout(30)
def test_ray_env_follows_direct_ingress_and_throughput_settings():
    from serving.deployments import ray_env
    from serving.settings import ServeSettings

    def settings(**kw) -> ServeSettings:
        return ServeSettings.from_yaml("deploy/serve.yaml").model_copy(update=kw)

    assert ray_env(settings()) == {}
    direct = ray_env(settings(direct_ingress=True))
    assert direct["RAY_SERVE_ENABLE_DIRECT_INGRESS"] == "1" and "RAY_SERVE_THROUGHPUT_OPTIMIZED" not in direct
    # the bundle would turn direct ingress on by itself: off unless the settings ask for it
    assert ray_env(settings(throughput_optimized=True)) == {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
                                                           "RAY_SERVE_ENABLE_DIRECT_INGRESS": "0"}
    both = ray_env(settings(throughput_optimized=True, direct_ingress=True))
    assert both["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1" and both["RAY_SERVE_ENABLE_DIRECT_INGRESS"] == "1"
