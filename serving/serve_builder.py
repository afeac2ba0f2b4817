"""Ray Serve application builder for config files: `serve run|deploy deploy/ray_serve_config.yaml`, KubeRay.

A Serve config names it as `import_path: serving.serve_builder:app_builder`; its `args` are

    config: deploy/serve.yaml         the serve config (ServeSettings, deploy/serve.yaml documents every key)
    overrides: [engine.device=cuda]   key.sub=value overrides, as `reasonrec serve` takes them (or one string)
    base_dir: /app                    where relative paths resolve (default: $REASONREC_HOME, else the cwd)
    num_replicas: 1, num_cpus: 1      defaults of the deployment; the config's `deployments:` section wins

Relative bundle paths, a JSONL feedback log and the page's split folder are made absolute against `base_dir`
here, so replicas do not depend on the working directory Ray gives them. REASONREC_REDIS_URL (environment of the
process that runs the builder) overrides `redis_url`, as everywhere. Ray itself is imported only by `build_application`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

HOME_ENV = "REASONREC_HOME"
ARGS = frozenset({"config", "overrides", "base_dir", "num_replicas", "num_cpus", "engine_cpus"})


def load_settings(args: dict[str, Any]):
    """The `ServeSettings` the builder args name, relative paths made absolute (ConfigError on a bad config)."""
    from serving.settings import ServeSettings

    unknown = sorted(set(args) - ARGS)
    if unknown:
        raise ValueError(f"unknown app_builder args {unknown}; known: {sorted(ARGS)}")
    base = Path(args.get("base_dir") or os.environ.get(HOME_ENV) or os.getcwd())
    config = _under(base, str(args.get("config") or "deploy/serve.yaml"))
    overrides = args.get("overrides") or []
    if isinstance(overrides, str):
        overrides = overrides.split()
    settings = ServeSettings.from_yaml(config, [str(o) for o in overrides])
    raw = settings.model_dump(mode="json")
    raw["bundles"] = {key: _under(base, path) for key, path in settings.bundles.items()}
    if settings.feedback_log != "redis":
        raw["feedback_log"] = _under(base, settings.feedback_log)
    if settings.ui.split_dir:
        raw["ui"]["split_dir"] = _under(base, settings.ui.split_dir)
    return ServeSettings.model_validate(raw)


def app_builder(args: dict):
    """Ray Serve calls this with the application's `args`; returns the bound reasonrec application."""
    from serving.deployments import build_application

    args = dict(args or {})
    settings = load_settings(args)
    return build_application(settings, num_replicas=int(args.get("num_replicas", 1)),
                             num_cpus=float(args.get("num_cpus", 1.0)),
                             engine_cpus=float(args.get("engine_cpus", 1.0)))


def _under(base: Path, path: str) -> str:
    return str(Path(path) if Path(path).is_absolute() else base / path)
