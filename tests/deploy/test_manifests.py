"""deploy/: every manifest parses, and the fields the app reads hold what the code expects (no Ray, no network)."""

from __future__ import annotations

import ast
import inspect
import json
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

from serving.settings import ServeSettings
from training.config import apply_overrides

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERAY = DEPLOY / "kuberay"
LOOPBACK = ("127.0.0.1", "::1", "localhost")
RAY_PORTS_OPEN_OUTSIDE = {8000, 8080, 8265, 52365}  # Serve HTTP, Ray metrics, dashboard API, dashboard agent


def docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def one(path: Path, kind: str) -> dict:
    found = [d for d in docs(path) if d.get("kind") == kind]
    assert len(found) == 1, f"{path.name}: expected one {kind}, found {len(found)}"
    return found[0]


def replica_env() -> dict[str, str]:
    """serving.deployments.REPLICA_ENV read from the source (importing the module would import Ray)."""
    tree = ast.parse((ROOT / "serving" / "deployments.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "REPLICA_ENV" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("REPLICA_ENV not found in serving/deployments.py")


def deployment_name() -> str:
    match = re.search(r'serve\.deployment\(RecommendIngress, name="([^"]+)"',
                      (ROOT / "serving" / "deployments.py").read_text())
    assert match, "build_application's deployment name not found"
    return match.group(1)


def serve_app(config: dict) -> dict:
    apps = config["applications"]
    assert len(apps) == 1
    return apps[0]


def local_serve_config() -> dict:
    return yaml.safe_load((DEPLOY / "ray_serve_config.yaml").read_text())


def rayservice() -> dict:
    return one(KUBERAY / "rayservice.yaml", "RayService")


def rayjob() -> dict:
    return one(KUBERAY / "rayjob-nearline.yaml", "RayJob")


def cluster_pod_specs(cluster: dict) -> list[tuple[str, dict]]:
    specs = [("head", cluster["headGroupSpec"]["template"]["spec"])]
    specs += [(g["groupName"], g["template"]["spec"]) for g in cluster["workerGroupSpecs"]]
    return specs


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def secret_ref(env: dict, name: str) -> tuple[str, str]:
    ref = env[name]["valueFrom"]["secretKeyRef"]
    return ref["name"], ref["key"]


def example_secrets() -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs(KUBERAY / "secrets.example.yaml")}


# ---- every file parses ------------------------------------------------------------------------------------


def test_every_yaml_and_json_under_deploy_parses():
    files = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml", ".json"))
    assert len(files) >= 12, files
    for path in files:
        loaded = [json.loads(path.read_text())] if path.suffix == ".json" else docs(path)
        assert loaded, f"{path} is empty"
        assert all(isinstance(d, dict) for d in loaded), f"{path}: every document must be a mapping"
    for path in KUBERAY.glob("*.yaml"):
        for d in docs(path):
            assert {"apiVersion", "kind", "metadata"} <= set(d), f"{path.name}: {d.get('kind')} lacks a header"
            if d["kind"] != "Namespace":
                assert d["metadata"].get("namespace") == "reasonrec", f"{path.name}: {d['kind']} namespace"


# ---- Ray Serve config -------------------------------------------------------------------------------------


def test_serve_config_import_path_resolves_to_a_one_argument_builder():
    import importlib

    for config in (local_serve_config(), yaml.safe_load(rayservice()["spec"]["serveConfigV2"])):
        module_name, attr = serve_app(config)["import_path"].split(":")
        builder = getattr(importlib.import_module(module_name), attr)
        assert inspect.isfunction(builder)  # Ray Serve calls a builder function with the args dict
        assert len(inspect.signature(builder).parameters) == 1


def test_local_serve_config_is_loopback_with_replica_env_and_hot_reload_overrides():
    config = local_serve_config()
    assert config["http_options"]["host"] in LOOPBACK
    app = serve_app(config)
    assert app["route_prefix"] == "/"
    env = app["runtime_env"]["env_vars"]
    # ray_actor_options in a config replace the code's (runtime_env included): every replica var must be here
    assert set(replica_env()) <= set(env), set(replica_env()) - set(env)
    assert all(isinstance(v, str) for v in env.values())
    assert env["VLLM_HOST_IP"] == "127.0.0.1" and env["HF_HUB_OFFLINE"] == "1"
    (deployment,) = app["deployments"]
    assert deployment["name"] == deployment_name()
    assert deployment["num_replicas"] >= 1
    assert env["OMP_NUM_THREADS"] == str(int(deployment["ray_actor_options"]["num_cpus"]))
    assert isinstance(deployment["user_config"]["overrides"], list)


def test_serve_config_args_name_a_valid_serve_config(monkeypatch):
    from serving.serve_builder import load_settings

    monkeypatch.delenv("REASONREC_REDIS_URL", raising=False)
    for config, base in ((local_serve_config(), None), (yaml.safe_load(rayservice()["spec"]["serveConfigV2"]), "/app")):
        app = serve_app(config)
        args = dict(app["args"])
        assert args.get("base_dir") == base
        path = ROOT / args["config"]
        plain = ServeSettings.from_yaml(path, list(args.get("overrides") or []))
        settings = load_settings(args | {"base_dir": str(ROOT)})  # the image's /app is this repository
        assert settings.experiments == plain.experiments
        assert all(Path(p).is_absolute() for p in settings.bundles.values())
        for deployment in app["deployments"]:  # hot-reload overrides apply to the loaded settings
            ServeSettings.model_validate(apply_overrides(settings.model_dump(mode="json"),
                                                         deployment["user_config"]["overrides"]))


def test_app_builder_passes_settings_and_resources_to_build_application(monkeypatch, tmp_path):
    from serving import serve_builder

    calls = []
    fake = types.ModuleType("serving.deployments")
    fake.build_application = lambda settings, num_replicas=1, num_cpus=1.0, engine_cpus=1.0: calls.append(
        (settings, num_replicas, num_cpus)) or "app"
    monkeypatch.setitem(sys.modules, "serving.deployments", fake)
    monkeypatch.setenv("REASONREC_REDIS_URL", "redis://redis.example:6379/3")
    app = serve_builder.app_builder({"config": "deploy/serve.yaml", "base_dir": str(ROOT), "num_replicas": 2,
                                     "num_cpus": 3, "overrides": "engine.max_batch_size=4 feedback_log=redis"})
    assert app == "app"
    settings, replicas, cpus = calls[0]
    assert (replicas, cpus) == (2, 3.0)
    assert settings.engine.max_batch_size == 4 and settings.feedback_log == "redis"
    assert settings.redis_url == "redis://redis.example:6379/3"
    assert settings.bundle_path("sft") == ROOT / "runs" / "sft" / "bundle"
    with pytest.raises(ValueError, match="unknown app_builder args"):
        serve_builder.app_builder({"confg": "deploy/serve.yaml"})
    logged = serve_builder.load_settings({"base_dir": str(tmp_path), "config": str(ROOT / "deploy" / "serve.yaml")})
    assert Path(logged.feedback_log).is_relative_to(tmp_path)


@pytest.mark.slow  # imports Ray: ~3 s of CPU, free when other tests imported it already
def test_serve_configs_validate_against_ray_serve_schema():
    """The one test that imports Ray (its config schema only; nothing is started)."""
    from ray.serve.schema import ServeDeploySchema

    for config in (local_serve_config(), yaml.safe_load(rayservice()["spec"]["serveConfigV2"])):
        ServeDeploySchema.model_validate(config)


# ---- KubeRay ----------------------------------------------------------------------------------------------


def test_rayservice_embeds_the_same_application_with_gpu_autoscaling():
    service = rayservice()
    assert service["apiVersion"] == "ray.io/v1"
    local, cluster = serve_app(local_serve_config()), serve_app(yaml.safe_load(service["spec"]["serveConfigV2"]))
    for key in ("name", "route_prefix", "import_path"):
        assert cluster[key] == local[key]
    assert cluster["args"]["config"] == local["args"]["config"]
    assert set(cluster["runtime_env"]["env_vars"]) == set(local["runtime_env"]["env_vars"])
    (deployment,) = cluster["deployments"]
    assert deployment["name"] == deployment_name()
    assert set(deployment["user_config"]) == set(local["deployments"][0]["user_config"])
    scaling = deployment["autoscaling_config"]
    assert "num_replicas" not in deployment and 1 <= scaling["min_replicas"] <= scaling["max_replicas"]
    options = deployment["ray_actor_options"]
    assert cluster["runtime_env"]["env_vars"]["OMP_NUM_THREADS"] == str(int(options["num_cpus"]))
    assert options.get("num_gpus", 0) >= 1 and "engine.device=cuda" in cluster["args"]["overrides"]
    gpu_groups = [g for g in service["spec"]["rayClusterConfig"]["workerGroupSpecs"]
                  if "nvidia.com/gpu" in g["template"]["spec"]["containers"][0]["resources"]["limits"]]
    assert sum(g["maxReplicas"] for g in gpu_groups) >= scaling["max_replicas"]


@pytest.mark.parametrize("which", ["rayservice", "rayjob"])
def test_ray_clusters_have_head_and_workers_token_auth_redis_secret_and_resources(which):
    if which == "rayservice":
        cluster = rayservice()["spec"]["rayClusterConfig"]
        assert cluster["enableInTreeAutoscaling"] is True
    else:
        cluster = rayjob()["spec"]["rayClusterSpec"]
    assert cluster["rayVersion"] == "2.60.0"
    assert cluster["authOptions"]["mode"] == "token"
    auth_secret = cluster["authOptions"]["secretName"]
    assert cluster["headGroupSpec"]["template"]["spec"]["containers"][0]["name"] == "ray-head"
    groups = cluster["workerGroupSpecs"]
    assert groups and len({g["groupName"] for g in groups}) == len(groups)
    for group in groups:
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    secrets = example_secrets()
    for name, spec in cluster_pod_specs(cluster):
        labels = (cluster["headGroupSpec"] if name == "head" else next(g for g in groups if g["groupName"] == name)
                  )["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "reasonrec-ray"  # the network policies select these
        for container in spec["containers"]:
            env = env_of(container)
            assert env["RAY_AUTH_MODE"]["value"] == "token", name
            assert secret_ref(env, "RAY_AUTH_TOKEN") == (auth_secret, "auth_token"), name
            secret, key = secret_ref(env, "REASONREC_REDIS_URL")
            assert key in secrets[secret]["stringData"], (secret, key)
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"])
        for volume in spec.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] == "reasonrec-bundles"
    assert "auth_token" in secrets[auth_secret]["stringData"]


def test_rayservice_gpu_group_requests_a_gpu():
    groups = {g["groupName"]: g for g in rayservice()["spec"]["rayClusterConfig"]["workerGroupSpecs"]}
    assert {"cpu", "gpu"} <= set(groups)
    resources = groups["gpu"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == 1 and resources["requests"]["nvidia.com/gpu"] == 1
    assert "nvidia.com/gpu" not in groups["cpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert groups["gpu"]["minReplicas"] < groups["gpu"]["maxReplicas"]


def test_network_policy_keeps_ray_ports_inside_the_namespace():
    policy = one(KUBERAY / "network-policy.yaml", "NetworkPolicy")
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/name": "reasonrec-ray"}
    for cluster in (rayservice()["spec"]["rayClusterConfig"], rayjob()["spec"]["rayClusterSpec"]):
        groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
        for group in groups:  # every Ray pod, the RayService's and the nearline RayJob's, is under the policy
            assert selector.items() <= group["template"]["metadata"]["labels"].items()
    # `kubectl create -f rayjob-nearline.yaml` runs once per job: a fixed-name object in it would fail the 2nd run
    assert [d["kind"] for d in docs(KUBERAY / "rayjob-nearline.yaml")] == ["RayJob"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    for rule in policy["spec"]["ingress"]:
        peers = rule["from"]
        local_only = all(set(p) == {"podSelector"} for p in peers)
        if local_only:
            continue
        ports = {p["port"] for p in rule.get("ports", [])}
        assert ports and ports <= RAY_PORTS_OPEN_OUTSIDE, f"ports {ports} open outside the namespace"
        assert not any("ipBlock" in p for p in peers)


def test_rayjob_runs_nearline_with_options_the_cli_knows():
    import typer.main

    from feature_store.nearline_cli import nearline_app

    job = rayjob()
    assert job["apiVersion"] == "ray.io/v1"
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    entrypoint = " ".join(spec["entrypoint"].split())
    assert entrypoint.startswith("reasonrec nearline run ")
    assert "--users changed" in entrypoint and "--bundle /app/runs/" in entrypoint
    assert re.search(r"--job-id \S*\$\(date [^)]*\)", entrypoint)
    known = {opt for p in typer.main.get_command(nearline_app).params for opt in p.opts}
    used = set(re.findall(r"(?<!\S)--[a-z][a-z-]*", entrypoint))
    assert used <= known, used - known
    assert "--ray-address auto" in entrypoint  # join the job's cluster (an empty address starts a local Ray)


def test_redis_statefulset_persists_with_a_password_from_a_secret():
    path = KUBERAY / "redis.yaml"
    sts = one(path, "StatefulSet")
    pod = sts["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    script = " ".join(container["command"] + container["args"])
    assert "--appendonly yes" in script and "requirepass" in script and "$REDIS_PASSWORD" in script
    secret, key = secret_ref(env_of(container), "REDIS_PASSWORD")
    assert key in example_secrets()[secret]["stringData"]
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert {"name": claim["metadata"]["name"], "mountPath": "/data"} in container["volumeMounts"]
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    service = one(path, "Service")
    assert service["spec"]["type"] == "ClusterIP" and service["metadata"]["name"] == sts["spec"]["serviceName"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert [p["port"] for p in service["spec"]["ports"]] == [6379]
    policy = one(path, "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    # the Redis URL the app gets points at this Service
    url = example_secrets()["reasonrec-redis"]["stringData"]["url"]
    assert f"@{service['metadata']['name']}.reasonrec.svc:6379/" in url


def test_example_secrets_hold_placeholders_only():
    secrets = docs(KUBERAY / "secrets.example.yaml")
    assert {d["kind"] for d in secrets} == {"Secret"}
    for secret in secrets:
        assert "data" not in secret, "base64 data in an example secret"
        for key, value in secret["stringData"].items():
            assert "CHANGE-ME" in value, f"{secret['metadata']['name']}.{key} is not a placeholder"
    env_example = (DEPLOY / ".env.example").read_text()
    for line in env_example.splitlines():
        if line and not line.startswith("#"):
            assert "CHANGE-ME" in line.split("=", 1)[1], line


# ---- docker compose, Prometheus, Grafana ------------------------------------------------------------------


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def test_compose_services_bind_host_ports_to_loopback_only():
    services = compose()["services"]
    assert {"app", "redis", "prometheus", "grafana"} <= set(services)
    published = 0
    for name, service in services.items():
        for port in service.get("ports", []):
            assert isinstance(port, str) and port.startswith("127.0.0.1:"), f"{name}: {port!r} not on loopback"
            published += 1
    assert published >= 3
    assert "ports" not in services["redis"]
    networks = compose()["networks"]
    assert networks["backend"]["internal"] is True and services["redis"]["networks"] == ["backend"]
    for name, service in services.items():  # mounted files exist
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), f"{name}: {source} missing"


def test_compose_app_serves_the_serve_config_inside_the_container_network(monkeypatch):
    app = compose()["services"]["app"]
    assert (DEPLOY / app["build"]["context"] / app["build"]["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    command = app["command"]
    assert command[:4] == ["reasonrec", "serve", "--config", "deploy/serve.yaml"]
    overrides = command[4:]
    assert "host=0.0.0.0" in overrides
    monkeypatch.delenv("REASONREC_REDIS_URL", raising=False)
    settings = ServeSettings.from_yaml(ROOT / "deploy" / "serve.yaml", overrides)
    assert f"127.0.0.1:{settings.port}:{settings.port}" in app["ports"]
    url = app["environment"]["REASONREC_REDIS_URL"]
    assert url.startswith("redis://:${REDIS_PASSWORD") and "@redis:6379/" in url
    redis = compose()["services"]["redis"]
    script = " ".join(redis["command"])
    assert "requirepass" in script and "$$REDIS_PASSWORD" in script and "--bind" in script
    assert "REDIS_PASSWORD" in redis["environment"]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert "torch==2.13.0" in dockerfile and "ARG VARIANT=cpu" in dockerfile and '".[${VARIANT}]"' in dockerfile
    assert "pip uninstall -y torchvision torchaudio torchcodec" in dockerfile


def test_prometheus_scrapes_the_app_metrics_endpoint():
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "reasonrec"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    port = ServeSettings.from_yaml(ROOT / "deploy" / "serve.yaml").port
    assert targets == [f"app:{port}"]
    prometheus = compose()["services"]["prometheus"]
    assert set(prometheus["networks"]) & set(compose()["services"]["app"]["networks"])


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not on PATH")
def test_promtool_accepts_the_scrape_config():
    result = subprocess.run(["promtool", "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def exposition() -> dict[str, set[str]]:
    """Sample name -> label names, from a ServingMetrics that saw one of everything."""
    from prometheus_client.parser import text_string_to_metric_families

    from serving.metrics import ServingMetrics

    m = ServingMetrics(arms=["direct", "reasoning"])
    m.observe_request("/v1/recommend", 200, 0.01, mode="direct", arm="direct")
    m.observe_fallback("reasoning", "no_cached_cot")
    m.observe_cot_lookup(hit=True)
    m.observe_feedback("direct", "click")
    m.observe_dependency("redis", 0.001)
    m.set_queue_depth("native", 1)
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(m.render()[0].decode()):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "reasonrec.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def test_dashboard_promql_uses_only_series_and_labels_the_app_exports():
    series = exposition()
    exprs = dashboard_exprs()
    used = set()
    for expr in exprs:
        metrics = set(re.findall(r"\breasonrec_[a-z0-9_]+", expr))
        assert metrics, expr
        for name in metrics:
            assert name in series, f"{name} is not exported by ServingMetrics ({sorted(series)})"
        labels = set().union(*(series[n] for n in metrics))
        for group in re.findall(r"\bby \(([^)]*)\)", expr):
            for label in (x.strip() for x in group.split(",")):
                assert label in labels, f"{expr}: no label {label!r}"
        for matchers in re.findall(r"\{([^}]*)\}", expr):
            for matcher in filter(None, (x.strip() for x in matchers.split(","))):
                label = re.split(r"=~|!~|!=|=", matcher)[0]
                assert label in labels, f"{expr}: no label {label!r}"
        used |= metrics
    families = {re.sub(r"_(bucket|count|sum)$", "", n) for n in series if not n.endswith("_created")}
    charted = {re.sub(r"_(bucket|count|sum)$", "", n) for n in used}
    assert families <= charted, f"series without a panel: {sorted(families - charted)}"
    joined = " ".join(exprs)
    assert "histogram_quantile(0.5," in joined and "histogram_quantile(0.99," in joined
    assert "sum by (le, mode, arm)" in joined


def test_grafana_provisioning_points_at_prometheus_and_the_dashboard_folder():
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    (source,) = datasource["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "reasonrec.json").read_text())
    uids = {p["datasource"]["uid"] for p in dashboard["panels"]}
    uids |= {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    assert uids == {source["uid"]}
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    providers = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/dashboards.yml").read_text())["providers"]
    mounts = dict(v.split(":")[:2] for v in compose()["services"]["grafana"]["volumes"])
    assert mounts["./grafana/dashboards"] == providers[0]["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
