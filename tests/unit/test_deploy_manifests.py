"""The Kubernetes manifests and the compose file, checked against the code: they parse, carry the required fields,
and every image, command, setting, port, probe path and topic agrees with what the workers actually read and
serve."""

from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.settings import ENV_PREFIX, Settings
from streams.topics_admin import all_topics, partition_count, topic_config

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SETTING_VARIABLES = {ENV_PREFIX + spec.name.upper() for spec in fields(Settings)}
OTHER_VARIABLES = {"HF_HUB_OFFLINE", "KAFKA_BOOTSTRAP"}


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomized(directory: Path) -> list[dict[str, Any]]:
    kustomization = documents(directory / "kustomization.yaml")[0]
    listed = set(kustomization["resources"])
    present = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present, f"{directory.name}: resources listed {sorted(listed)} but present {sorted(present)}"
    return [doc for name in kustomization["resources"] for doc in documents(directory / name)]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def container_settings(container: dict[str, Any], configmaps: dict[str, dict[str, Any]]) -> Settings:
    """The Settings a container's worker would read: its ConfigMaps, then its own env (secrets as placeholders)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(configmaps[source["configMapRef"]["name"]]["data"])
    for variable in container.get("env", []):
        env[variable["name"]] = variable.get("value", "from-a-secret")
    unknown = {name for name in env if name not in SETTING_VARIABLES | OTHER_VARIABLES}
    assert not unknown, f"variables no setting reads: {sorted(unknown)}"
    assert all(isinstance(value, str) for value in env.values()), "environment values must be strings"
    return Settings.from_env(env)


@pytest.fixture(scope="module")
def workers() -> dict[str, tuple[dict[str, Any], Settings]]:
    """Each worker pool's pod spec and the Settings its container runs with."""
    docs = kustomized(K8S)
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(doc) and doc["metadata"]["name"]
    configmaps = by_kind(docs, "ConfigMap")
    pools = {**by_kind(docs, "StatefulSet"), **by_kind(docs, "Deployment")}
    assert set(pools) == {"driftrec-core", "driftrec-encoder"}
    result = {}
    for name, pool in pools.items():
        spec = pool["spec"]
        assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
        (container,) = spec["template"]["spec"]["containers"]
        result[name] = (pool, container_settings(container, configmaps))
    return result


def test_each_pool_runs_its_role_with_valid_settings(workers) -> None:  # type: ignore[no-untyped-def]
    assert workers["driftrec-core"][1].role == "core"
    assert workers["driftrec-encoder"][1].role == "encoder"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    kustomization = documents(K8S / "kustomization.yaml")[0]
    images = {image["name"] for image in kustomization["images"]}
    for pool, settings in workers.values():
        (container,) = pool["spec"]["template"]["spec"]["containers"]
        assert container["command"][0] in scripts and container["command"][1:] == ["worker"]
        assert container["image"] in images
        assert pool["spec"]["replicas"] <= settings.partitions, "replicas beyond the partitions would sit idle"
        assert settings.security_protocol == "SASL_SSL" and settings.ssl_cafile
        mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
        assert str(Path(settings.ssl_cafile).parent) in mounts


def test_ports_and_probes_match_the_worker_web_server(workers) -> None:  # type: ignore[no-untyped-def]
    from streams.worker import app

    routes = {resource.canonical for resource in app.web.web_app.router.resources()}
    for pool, settings in workers.values():
        template = pool["spec"]["template"]
        (container,) = template["spec"]["containers"]
        assert settings.web_host == "0.0.0.0", "a worker bound to 127.0.0.1 cannot be probed or scraped"
        assert [p["containerPort"] for p in container["ports"]] == [settings.web_port]
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready" and "/ready" in routes
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/path"] in routes
        assert int(annotations["prometheus.io/port"]) == settings.web_port


def test_core_state_is_on_a_volume_and_encoders_get_a_gpu(workers) -> None:  # type: ignore[no-untyped-def]
    core, core_settings = workers["driftrec-core"]
    assert core["kind"] == "StatefulSet"
    (container,) = core["spec"]["template"]["spec"]["containers"]
    claims = {claim["metadata"]["name"] for claim in core["spec"]["volumeClaimTemplates"]}
    state_mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"] if m["name"] in claims}
    assert list(state_mounts.values()) == [core_settings.data_dir]
    assert "nvidia.com/gpu" not in container["resources"].get("limits", {})

    encoder, encoder_settings = workers["driftrec-encoder"]
    (container,) = encoder["spec"]["template"]["spec"]["containers"]
    assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    assert encoder_settings.encoder_device == "cuda"
    tolerations = encoder["spec"]["template"]["spec"]["tolerations"]
    assert any(t["key"] == "nvidia.com/gpu" for t in tolerations)


def test_strimzi_topics_are_the_ones_the_workers_use(workers) -> None:  # type: ignore[no-untyped-def]
    settings = workers["driftrec-core"][1]
    topics = by_kind(kustomized(K8S / "strimzi"), "KafkaTopic")
    assert set(topics) == set(all_topics(settings))
    for name, topic in topics.items():
        assert topic["spec"]["partitions"] == partition_count(settings, name)
        expected = topic_config(settings, name)
        assert topic["spec"]["config"]["cleanup.policy"] == expected.get("cleanup.policy", "delete")
        assert {key: topic["spec"]["config"][key] for key in expected} == expected
    user = by_kind(kustomized(K8S / "strimzi"), "KafkaUser")[settings.sasl_username]
    assert user["spec"]["authentication"]["type"] == settings.sasl_mechanism.lower()
    prefixes = {acl["resource"].get("name") for acl in user["spec"]["authorization"]["acls"]}
    assert settings.app_id in prefixes


def test_compose_runs_both_pools_against_its_broker() -> None:
    compose = documents(ROOT / "deploy" / "docker-compose.yml")[0]
    services = compose["services"]
    roles = {}
    for name, service in services.items():
        if service.get("command") != ["driftrec", "worker"]:
            continue
        settings = Settings.from_env(service["environment"])
        roles[name] = settings.role
        host = settings.bootstrap.split(":")[0]
        assert host in services, f"{name} points at {host}, which compose does not run"
    assert roles == {"core": "core", "encoder": "encoder", "encoder-gpu": "encoder"}


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """About one random id in 64 starts with "-", which the storage tool reads as an option and refuses."""
    import uuid

    from deploy import local_kafka

    drawn = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=bytes(16))])
    monkeypatch.setattr(local_kafka.uuid, "uuid4", lambda: next(drawn))
    assert local_kafka.new_cluster_id() == "AAAAAAAAAAAAAAAAAAAAAA"
