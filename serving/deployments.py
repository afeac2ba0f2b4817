"""Ray Serve shells — the only serving module that imports ray (DESIGN.md §2, §6).

By default one ingress deployment holds the whole request path in-process: FastAPI app -> pipeline -> engines,
Rechead, FAISS, Redis client. A separate engine deployment behind a handle costs a hop of ~6-7 ms on this CPU
machine (DESIGN.md §8) — more than a tiny model's whole beam search — so engines live in the ingress replica; scale
out with `num_replicas` (each replica loads its own models). With `engine.replicas > 0` each direct engine runs in
its own deployment (`engine-<i>`, one per distinct bundle) called by handle (`serving/engine/remote.py`): the price
of that hop buys isolation — an engine replica that dies costs its in-flight requests a 503 + Retry-After (one
retry first, which a living replica answers), not the 500 that Ray's proxy gives for a dead ingress replica, and
requests waiting for a replacement get the engine timeout (503) instead of waiting for the restart.

Hot reload without dropping requests: the replica's ASGI callable forwards to the *current* FastAPI app; `reload()`
builds a new pipeline first and swaps only if every arm loaded, so a bad bundle leaves the old pipeline serving;
direct engines whose bundle files did not change are taken over, not started again. Requests already inside the old
app finish on it; it is closed after `DRAIN_S`. Reload by `POST /admin/reload` or by a new `user_config` (Ray calls
`reconfigure`). The admin call needs `Authorization: Bearer $REASONREC_ADMIN_TOKEN` when that variable is set in the
replica, else it is accepted from loopback clients only; the token is compared in constant time and never logged."""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import os
import time
from typing import Any

from ray import serve

from serving.settings import ServeSettings

log = logging.getLogger(__name__)
DRAIN_S = 30.0
ADMIN_TOKEN_ENV = "REASONREC_ADMIN_TOKEN"
LOOPBACK = ("127.0.0.1", "::1", "localhost")
RELOAD_PATH = "/admin/reload"
# Serve reads these when each of its processes starts, so they are set before Ray starts (`start`).
DIRECT_INGRESS_ENV = {"RAY_SERVE_ENABLE_DIRECT_INGRESS": "1",
                      # Serve keeps a stopping replica open this long for outside load balancers (default 30 s)
                      "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2"}
_saved_env: dict[str, str | None] = {}
REPLICA_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_HOST_IP": "127.0.0.1",
               "VLLM_NO_USAGE_STATS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _build(settings: ServeSettings, reuse=None, direct_factory=None):
    from serving.app import build_app
    from serving.loading import build_pipeline_from_settings

    # warmed on the replica's loop (vLLM's AsyncLLM); a reload takes over the unchanged engines of `reuse`
    pipeline = build_pipeline_from_settings(settings, warm=False, reuse=reuse, direct_factory=direct_factory)
    return pipeline, build_app(pipeline)


async def call_engine(handle, retry_after_s: float, query):
    """One query to an engine deployment; Ray's failures as the serving errors the app maps to 503 + Retry-After.
    A replica that dies mid-call is retried once (the router then picks a living replica, or waits for one)."""
    from ray.exceptions import ActorUnavailableError, RayActorError
    from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

    from serving.errors import DependencyUnavailable, EngineOverloaded

    for attempt in (1, 2):
        try:
            return await handle.recommend.remote(query)
        except BackPressureError:
            raise EngineOverloaded("engine deployment overloaded: every replica busy and its queue full",
                                   retry_after_s) from None
        except DeploymentUnavailableError:
            raise DependencyUnavailable("engine", "the engine deployment is unavailable", retry_after_s) from None
        except (RayActorError, ActorUnavailableError):
            log.warning("engine replica lost while answering (attempt %d of 2)", attempt)
    raise DependencyUnavailable("engine", "the engine replica was lost while answering; retry", retry_after_s)


def remote_engines(handles: dict[str, Any]):
    """A `direct_factory` for `build_pipeline_from_settings`: arm -> RemoteDirectEngine over the arm's handle."""
    from serving.engine.remote import RemoteDirectEngine

    def build(settings: ServeSettings, arm):
        handle = handles[arm.name]
        return RemoteDirectEngine.from_bundle(settings.bundle_path(arm.bundle),
                                              functools.partial(call_engine, handle, settings.engine.retry_after_s),
                                              lambda: handle.describe.remote(), arm.bundle_version)

    return build


class DirectEngineDeployment:
    """One direct engine (native or vLLM) of arm `arm` in its own replicas (`engine.replicas > 0`)."""

    async def __init__(self, settings: dict[str, Any], arm: str):
        from serving.engine.remote import EngineHost
        from serving.loading import engine_factory

        for name, value in REPLICA_ENV.items():
            os.environ.setdefault(name, value)
        s = ServeSettings.model_validate(settings)
        arm_settings = next(a for a in s.experiments[0].arms if a.name == arm)
        engine = await asyncio.to_thread(engine_factory(arm_settings), s, arm_settings)
        e = s.engine
        self.host = EngineHost.of(engine, e.max_batch_size, e.batch_wait_ms, e.max_queue, e.retry_after_s,
                                  s.request_timeout_s)
        await self.host.warm()

    async def recommend(self, query):
        return await self.host.recommend(query)

    def describe(self) -> dict:
        return self.host.describe()


@serve.ingress()
class RecommendIngress:
    """The reasonrec app in one replica: `settings` is a `ServeSettings` as a dict (it crosses Ray)."""

    async def __init__(self, settings: dict[str, Any], engines: dict[str, Any] | None = None):
        for name, value in REPLICA_ENV.items():
            os.environ.setdefault(name, value)
        self.settings = ServeSettings.model_validate(settings)
        self.direct_factory = remote_engines(engines) if engines else None
        self.pipeline, self.current_app = await asyncio.to_thread(_build, self.settings, None, self.direct_factory)
        await self.pipeline.warm_async()
        self._reloading = asyncio.Lock()

    def __serve_build_asgi_app__(self):
        async def forward(scope, receive, send):
            if scope["type"] == "http" and scope["path"] == RELOAD_PATH:
                await self._admin_reload(scope, receive, send)
            else:
                await self.current_app(scope, receive, send)

        return forward

    async def reload(self, settings: ServeSettings | None = None) -> dict:
        """Load `settings` (default: the current ones, re-reading every bundle); swap only if all arms load."""
        async with self._reloading:
            settings, old = settings or self.settings, self.pipeline
            try:
                pipeline, app = await asyncio.to_thread(_build, settings, old, self.direct_factory)
            except Exception as err:  # noqa: BLE001 - e.g. an unwritable feedback log: refused, not a 500
                log.exception("reload failed, the old pipeline keeps serving")
                return {"reloaded": False, "errors": {"pipeline": f"{type(err).__name__}: {err}"}}
            if pipeline.load_errors:
                pipeline.close(keep=old.loaded_models())
                return {"reloaded": False, "errors": pipeline.load_errors}
            try:
                await pipeline.warm_async()
            except Exception as err:  # noqa: BLE001 - a model that cannot answer its warm-up is not swapped in
                log.exception("reload: warm-up failed, the old pipeline keeps serving")
                pipeline.close(keep=old.loaded_models())
                return {"reloaded": False, "errors": {"warm-up": f"{type(err).__name__}: {err}"}}
            self.settings, self.pipeline, self.current_app = settings, pipeline, app
            asyncio.get_running_loop().call_later(DRAIN_S, functools.partial(old.close, keep=pipeline.loaded_models()))
            return {"reloaded": True, "versions": {m.arm: m.bundle_version for m in pipeline.models().models}}

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Ray Serve calls this with a deployment's new `user_config`: {"overrides": ["bundles.sft=...", ...]}."""
        overrides = list(user_config.get("overrides") or [])
        if not overrides:
            return
        from training.config import apply_overrides

        merged = ServeSettings.model_validate(apply_overrides(self.settings.model_dump(mode="json"), overrides))
        result = await self.reload(merged)
        if not result["reloaded"]:
            log.error("reload refused, the old bundles keep serving: %s", result["errors"])

    async def _admin_reload(self, scope, receive, send) -> None:
        refusal = admin_refusal(scope, os.environ.get(ADMIN_TOKEN_ENV, ""))
        if scope["method"] != "POST":
            await _reply(send, 405, {"detail": "use POST"})
        elif refusal:
            await _reply(send, refusal[0], {"detail": refusal[1]})
        else:
            result = await self.reload()
            await _reply(send, 200 if result["reloaded"] else 409, result)


def admin_refusal(scope: dict, token: str) -> tuple[int, str] | None:
    """(status, reason) when an admin call must be refused, None when it may go on."""
    if token:
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"authorization", b"").decode("latin-1")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return 401, "admin calls need 'Authorization: Bearer <REASONREC_ADMIN_TOKEN>'"
        return None
    client = (scope.get("client") or ("", 0))[0]
    if client not in LOOPBACK:
        return 403, f"admin calls are allowed from loopback only (or set {ADMIN_TOKEN_ENV} in the service)"
    return None


async def _reply(send, status: int, body: dict) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


def _actor_options(num_cpus: float) -> dict:
    threads = str(max(1, int(num_cpus)))
    return {"num_cpus": num_cpus, "runtime_env": {"env_vars": {**REPLICA_ENV, "OMP_NUM_THREADS": threads}}}


def engine_deployments(settings: ServeSettings, num_cpus: float = 1.0) -> dict[str, Any]:
    """arm name -> the bound engine deployment serving it: one deployment (`engine-<i>`, `engine.replicas`
    replicas) per distinct (engine, bundle, version) among the active experiment's direct arms."""
    payload, bound, by_arm = settings.model_dump(mode="json"), {}, {}
    for arm in settings.experiments[0].arms:
        if arm.mode != "direct":
            continue
        key = (arm.engine, arm.bundle, arm.bundle_version)
        if key not in bound:
            bound[key] = serve.deployment(
                DirectEngineDeployment, name=f"engine-{len(bound)}", num_replicas=settings.engine.replicas,
                max_queued_requests=settings.engine.max_queued, ray_actor_options=_actor_options(num_cpus),
                max_ongoing_requests=max(64, settings.engine.max_queue * 2)).bind(payload, arm.name)
        by_arm[arm.name] = bound[key]
    return by_arm


def build_application(settings: ServeSettings, num_replicas: int = 1, num_cpus: float = 1.0,
                      engine_cpus: float = 1.0):
    """The bound Ray Serve application (pass to `serve.run`); with `engine.replicas > 0`, engine deployments too."""
    engines = engine_deployments(settings, engine_cpus) if settings.engine.replicas else None
    deployment = serve.deployment(RecommendIngress, name="reasonrec", num_replicas=num_replicas,
                                  ray_actor_options=_actor_options(num_cpus),
                                  max_ongoing_requests=max(64, settings.engine.max_queue * 2))
    return deployment.bind(settings.model_dump(mode="json"), engines)


def start(settings: ServeSettings, num_cpus: int | None = None, num_replicas: int = 1, replica_cpus: float = 1.0,
          blocking: bool = False, address: str | None = None, engine_cpus: float = 1.0) -> str:
    """Starts local Ray (or joins `address`, else RAY_ADDRESS), Serve's HTTP proxy on settings.host:port, and the app.

    Returns the base URL. Ray opens helper ports on all interfaces even when the HTTP proxy is on loopback
    (DESIGN.md §8): on a shared network, use Ray's token authentication and a network policy."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS")
        _set_ray_env(address, ray_env(settings))
        ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
                 log_to_driver=False, **({} if address else {"_node_ip_address": "127.0.0.1"}))
    _start_proxy(settings)
    serve.run(build_application(settings, num_replicas, replica_cpus, engine_cpus), name="reasonrec", route_prefix="/",
              blocking=blocking, logging_config=_logging_config(settings))
    return f"http://{settings.host}:{settings.port}"


def ray_env(settings: ServeSettings) -> dict[str, str]:
    """The Ray Serve variables the settings ask for (read by Serve's processes when they start)."""
    env = dict(DIRECT_INGRESS_ENV) if settings.direct_ingress else {}
    if settings.throughput_optimized:  # the bundle turns direct ingress on unless told otherwise
        env |= {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
                "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1" if settings.direct_ingress else "0"}
    return env


def _set_ray_env(address: str | None, env: dict[str, str]) -> None:
    """Sets `env` for the local Ray about to start (`stop` restores it). A cluster that is joined has its own
    environment: start it with these variables."""
    if address:
        if env:
            log.warning("the Ray cluster at %s must have been started with %s", address,
                        " ".join(f"{k}={v}" for k, v in env.items()))
        return
    for name, value in env.items():
        _saved_env.setdefault(name, os.environ.get(name))
        os.environ[name] = value


def replica_urls(settings: ServeSettings, timeout_s: float = 30.0) -> list[str]:
    """Base URLs of the app replicas' own HTTP servers when direct ingress is on; [] when it is off. Waits up to
    `timeout_s` for Serve to list a started replica. Serve's controller has no public call for this in Ray 2.60:
    `get_target_groups` is what its HAProxy integration uses."""
    import ray

    if not settings.direct_ingress:
        return []
    controller = serve.context._get_global_client()._controller
    deadline = time.monotonic() + timeout_s
    while True:
        groups = ray.get(controller.get_target_groups.remote("reasonrec"))
        targets = sorted({(t.ip, t.port) for g in groups if str(g.protocol).endswith("HTTP") for t in g.targets
                          if t.name.startswith("SERVE_REPLICA")})
        if targets or time.monotonic() > deadline:  # a replica binds settings.host; Serve lists the node's address
            return [f"http://{'127.0.0.1' if settings.host in LOOPBACK else ip}:{port}" for ip, port in targets]
        time.sleep(0.5)


def _logging_config(settings: ServeSettings):
    """Serve's logging: its per-request access log (proxy, controller, replicas) only when settings.access_log."""
    from ray.serve.schema import LoggingConfig

    return LoggingConfig(enable_access_log=settings.access_log)


def _start_proxy(settings: ServeSettings, attempts: int = 3) -> None:
    """serve.start, retried: on a loaded machine the HTTP proxy can miss Serve's start-up timeout, and Serve then
    kills it (ActorDiedError) although a second try succeeds."""
    from ray.exceptions import ActorDiedError, GetTimeoutError

    for attempt in range(1, attempts + 1):
        try:
            serve.start(http_options={"host": settings.host, "port": settings.port},
                        logging_config=_logging_config(settings))
            return
        except (ActorDiedError, GetTimeoutError):
            if attempt == attempts:
                raise
            log.warning("Serve's HTTP proxy did not start (attempt %d of %d); retrying", attempt, attempts)
            serve.shutdown()


def stop() -> None:
    import ray

    serve.shutdown()
    ray.shutdown()
    while _saved_env:
        name, value = _saved_env.popitem()
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
