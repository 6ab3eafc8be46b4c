"""The deployment files, checked without a Docker engine or a cluster (issue 16): docker-compose.yml's
services, listeners, volumes, healthchecks and order; the Dockerfile's pins, user and healthcheck; the
lock file; and deploy/k8s validated against the Kubernetes API schemas (kubernetes-validate, offline)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from ops.cli import _COMMANDS
from runstream.config import Settings

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
#: A release most managed clusters run, and the newest the schemas know.
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in service.get("environment", {}).items()}


def _listeners(value: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` -> {name: (host, port)}."""
    out = {}
    for item in value.split(","):
        name, _, address = item.partition("://")
        host, _, port = address.rpartition(":")
        out[name] = (host, int(port))
    return out


def test_kafka_listens_for_the_network_and_for_the_host() -> None:
    services = compose()["services"]
    kafka = _env(services["kafka"])
    listeners = _listeners(kafka["KAFKA_LISTENERS"])
    advertised = _listeners(kafka["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(p.split(":") for p in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(listeners) == set(advertised) | {kafka["KAFKA_CONTROLLER_LISTENER_NAMES"]} == set(protocols)
    assert set(protocols.values()) == {"SASL_PLAINTEXT"}  # a login on every listener
    # Inside the network: what the services bootstrap from.
    internal = kafka["KAFKA_INTER_BROKER_LISTENER_NAME"]
    assert advertised[internal] == ("kafka", listeners[internal][1])
    for name in ("ingest",):
        assert Settings.from_env(_env(services[name])).kafka_bootstrap == f"kafka:{listeners[internal][1]}"
    # For the host: advertised on loopback at the port published on the host's loopback.
    [external] = set(advertised) - {internal}
    host, port = advertised[external]
    assert host == "127.0.0.1" and listeners[external][1] == port
    assert f"127.0.0.1:{port}:{port}" in services["kafka"]["ports"]
    for name in advertised:  # every client listener knows the runstream user
        assert (
            'user_runstream="${RUNSTREAM_KAFKA_PASSWORD' in kafka[f"KAFKA_LISTENER_NAME_{name}_PLAIN_SASL_JAAS_CONFIG"]
        )


def test_data_lives_in_named_volumes_owned_by_the_services_users() -> None:
    spec = compose()
    services, declared = spec["services"], set(spec["volumes"])
    mounts = {
        name: dict(reversed(v.split(":")[:2]) for v in service.get("volumes", [])) for name, service in services.items()
    }
    assert mounts["kafka"][_env(services["kafka"])["KAFKA_LOG_DIRS"]] == "kafka-data"
    assert mounts["postgres"]["/var/lib/postgresql/data"] == "postgres-data"
    assert mounts["query"][_env(services["query"])["RUNSTREAM_ARTIFACTS_DIR"]] == "artifacts"
    assert {"kafka-data", "postgres-data", "artifacts"} <= declared
    used = {source for m in mounts.values() for source in m.values() if not source.startswith(".")}
    assert used <= declared
    # The artifacts volume is filled from the image's directory, which its (non-root) user owns.
    image = dockerfile()
    uid = image.user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    assert re.search(rf"chown -R {uid}:{uid} /data\b", image.text)
    assert "/data/artifacts" in image.volumes


def test_services_start_in_order_and_restart() -> None:
    services = compose()["services"]
    for name in ("kafka", "postgres", "ingest", "query"):
        assert services[name]["restart"] == "unless-stopped", name
        assert services[name]["healthcheck"]["test"], name
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"].startswith("on-failure")
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("ingest", "query"):
        depends = services[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}
        assert depends["postgres"] == {"condition": "service_healthy"}
        assert _env(services[name])["RUNSTREAM_AUTO_MIGRATE"] == "false"  # only migrate migrates
    assert services["ingest"]["depends_on"]["kafka"] == {"condition": "service_healthy"}
    for name, service in services.items():
        for target, condition in service.get("depends_on", {}).items():
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits on {target}, which has no healthcheck"
    for name in ("ingest", "query"):
        assert services[name]["healthcheck"]["test"] == ["CMD", "runstream", "healthcheck", name]
    assert "kafka-broker-api-versions.sh --bootstrap-server kafka:9092" in services["kafka"]["healthcheck"]["test"][1]
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]


def test_ingest_metrics_are_reachable_and_query_sessions_survive_restarts() -> None:
    services = compose()["services"]
    ingest = Settings.from_env(_env(services["ingest"]))
    assert ingest.ingest_metrics_host == "0.0.0.0"  # noqa: S104 - inside its container
    assert f"127.0.0.1:{ingest.ingest_metrics_port}:{ingest.ingest_metrics_port}" in services["ingest"]["ports"]
    query = _env(services["query"])
    assert query["RUNSTREAM_COOKIE_SECRET"].startswith("${RUNSTREAM_COOKIE_SECRET:?")


class Dockerfile:
    def __init__(self, text: str) -> None:
        self.text = text
        joined = re.sub(r"\\\n", " ", text)
        self.lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")]
        self.args = dict(re.findall(r"^ARG (\w+)=(\S+)", joined, re.MULTILINE))
        self.stages = [line.split()[1] for line in self.lines if line.startswith("FROM ")]
        final = max(i for i, line in enumerate(self.lines) if line.startswith("FROM "))
        self.final = self.lines[final:]
        users = [line.split()[1] for line in self.final if line.startswith("USER ")]
        self.user = users[-1] if users else "root"
        self.volumes = " ".join(line for line in self.final if line.startswith("VOLUME "))


def dockerfile() -> Dockerfile:
    return Dockerfile((ROOT / "Dockerfile").read_text())


def test_the_image_is_pinned_runs_as_a_user_and_checks_its_health() -> None:
    image = dockerfile()
    for stage in image.stages:
        base = re.sub(r"\$\{(\w+)\}", lambda m: image.args[m.group(1)], stage)
        # An exact release (python:3.11.11-slim-bookworm), optionally with its digest; never a moving tag.
        assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base), base
    assert "COPY deploy/requirements.lock" in image.text
    assert re.search(r"pip install --require-hashes --no-deps .*-r /tmp/requirements.lock", image.text)
    assert image.user == "10001:10001"
    [healthcheck] = [line for line in image.final if line.startswith("HEALTHCHECK ")]
    assert healthcheck.endswith('CMD ["runstream", "healthcheck"]')
    assert 'ENTRYPOINT ["runstream"]' in image.final
    for command in ("query", "ingest", "migrate", "healthcheck", "gc-artifacts", "retention"):
        assert command in _COMMANDS  # the one image runs each of them


def test_the_lock_pins_every_dependency_with_hashes() -> None:
    import tomllib

    lock = (ROOT / "deploy" / "requirements.lock").read_text()
    entries = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\\n((?:\s+--hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)", lock, re.M)
    pinned = {name.lower().replace("_", "-"): Version(version) for name, version, _ in entries}
    requirement_lines = [line for line in lock.splitlines() if line and not line.startswith((" ", "#"))]
    assert len(requirement_lines) == len(entries)  # every requirement has its hashes
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        name = requirement.name.lower().replace("_", "-")
        assert name in pinned, f"{name} is not in deploy/requirements.lock: run `make lock`"
        assert pinned[name] in requirement.specifier, f"{name}=={pinned[name]} does not satisfy {spec}: `make lock`"


def k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, doc)
        for path in sorted(K8S.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and path.name != "kustomization.yaml"
    ]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_are_valid_kubernetes(version: str) -> None:
    documents = k8s_documents()
    assert len(documents) >= 12
    for name, doc in documents:
        try:
            kubernetes_validate.validate(doc, version, strict=True)  # strict: no unknown field either
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {exc.message} at {'/'.join(map(str, exc.path))}")
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert set(kustomization["resources"]) == {n for n, _ in documents} - {"secret.example.yaml"}


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in k8s_documents() if doc["kind"] == kind}


def _pod(workload: dict[str, Any]) -> dict[str, Any]:
    spec = workload["spec"]
    template = spec["jobTemplate"]["spec"]["template"] if workload["kind"] == "CronJob" else spec["template"]
    pod: dict[str, Any] = template["spec"]
    return pod


def test_workloads_run_unprivileged_with_requests_and_the_shared_configuration() -> None:
    config = _by_kind("ConfigMap")["runstream-config"]["data"]
    workloads = {**_by_kind("Deployment"), **_by_kind("Job"), **_by_kind("CronJob")}
    assert set(workloads) == {
        "runstream-query",
        "runstream-ingest",
        "runstream-migrate",
        "runstream-gc-artifacts",
        "runstream-retention",
    }
    for name, workload in workloads.items():
        pod = _pod(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False and security["capabilities"]["drop"] == ["ALL"]
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert container["resources"]["limits"]["memory"], name
            sources = {next(iter(s.values()))["name"] for s in container["envFrom"]}
            assert sources == {"runstream-config", "runstream-secrets"}, name
    # Production settings: migrations by the Job alone, JSON logs, artifacts shared by the replicas.
    settings = Settings.from_env({**config, **_example_secrets()})
    assert settings.auto_migrate is False and settings.log_format == "json"
    assert settings.s3 is not None and settings.topic_min_insync_replicas == 2
    assert _pod(workloads["runstream-migrate"])["containers"][0]["args"] == ["migrate"]
    # Deleting data is the operator's decision: the retention CronJob waits to be unsuspended.
    assert workloads["runstream-retention"]["spec"]["suspend"] is True
    assert _pod(workloads["runstream-retention"])["containers"][0]["args"][0] == "retention"


def _example_secrets() -> dict[str, str]:
    data: dict[str, str] = _by_kind("Secret")["runstream-secrets"]["stringData"]
    return {k: v.replace("CHANGE-ME-32-BYTES-OR-MORE", "x" * 32) for k, v in data.items()}


def test_query_replicas_and_ingest_workers_are_deployed_as_operators_expect() -> None:
    deployments = _by_kind("Deployment")
    query, ingest = deployments["runstream-query"], deployments["runstream-ingest"]
    partitions = int(_by_kind("ConfigMap")["runstream-config"]["data"]["RUNSTREAM_TOPIC_PARTITIONS"])
    assert query["spec"]["replicas"] >= 2
    assert 1 <= ingest["spec"]["replicas"] <= partitions  # at most one busy worker per partition
    probes = {
        name: {p: c[p]["httpGet"]["path"] for c in _pod(d)["containers"] for p in ("readinessProbe", "livenessProbe")}
        for name, d in deployments.items()
    }
    assert probes == {n: {"readinessProbe": "/ready", "livenessProbe": "/health"} for n in deployments}
    ingest_port = _pod(ingest)["containers"][0]["readinessProbe"]["httpGet"]["port"]
    assert [p["containerPort"] for p in _pod(ingest)["containers"][0]["ports"] if p["name"] == ingest_port] == [9100]
    env = {e["name"]: e["value"] for e in _pod(ingest)["containers"][0]["env"]}
    assert env["RUNSTREAM_INGEST_METRICS_HOST"] == "0.0.0.0"  # noqa: S104 - probed by the kubelet
    budgets = _by_kind("PodDisruptionBudget")
    assert budgets["runstream-query"]["spec"]["minAvailable"] == 1
    assert budgets["runstream-ingest"]["spec"]["maxUnavailable"] == 1
    for name, budget in budgets.items():
        assert budget["spec"]["selector"]["matchLabels"] == deployments[name]["spec"]["selector"]["matchLabels"]
    service = _by_kind("Service")["runstream-query"]
    assert service["spec"]["selector"] == query["spec"]["selector"]["matchLabels"]
