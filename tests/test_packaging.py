"""The deployment files agree with the code: compose names only variables runstream reads."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from runstream.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def _variables_read_by_code() -> set[str]:
    source = (ROOT / "runstream" / "config.py").read_text()
    return set(re.findall(r'"(RUNSTREAM_[A-Z_]+)"', source))


def test_compose_services_use_only_variables_the_code_reads() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    known = _variables_read_by_code()
    assert {"kafka", "postgres", "ingest", "query"} <= set(compose["services"])
    for name in ("ingest", "query", "migrate"):
        env = compose["services"][name]["environment"]
        runstream_vars = {k for k in env if k.startswith("RUNSTREAM_")}
        assert runstream_vars, f"{name} sets no RUNSTREAM_ variable"
        assert runstream_vars <= known, f"{name} sets variables nothing reads: {runstream_vars - known}"


def test_compose_environment_resolves_to_settings() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = {k: str(v) for k, v in compose["services"]["ingest"]["environment"].items()}
    settings = Settings.from_env(env)
    assert settings.kafka_bootstrap == "kafka:9092"
    assert settings.database_url.endswith("@postgres:5432/runstream")
    assert settings.ingest_metrics_port == 9100


def test_every_documented_variable_is_read() -> None:
    source = (ROOT / "runstream" / "config.py").read_text()
    documented = set(re.findall(r"^(RUNSTREAM_[A-Z_]+)\s", source, flags=re.MULTILINE))
    assert documented == _variables_read_by_code()


_COMPOSE_SECRETS = (
    "RUNSTREAM_PG_ADMIN_PASSWORD",
    "RUNSTREAM_PG_PASSWORD",
    "RUNSTREAM_KAFKA_PASSWORD",
    "RUNSTREAM_KAFKA_BROKER_PASSWORD",
    "RUNSTREAM_TOKEN",
    "RUNSTREAM_WRITE_TOKEN",
)


def test_compose_is_private_by_default() -> None:
    """Nothing starts without its secrets, no secret has a default, no port is open beyond loopback."""
    text = (ROOT / "docker-compose.yml").read_text()
    compose = yaml.safe_load(text)
    assert re.findall(r"\$\{(\w+):?-", text) == []  # no default for any variable: never an empty token
    for secret in _COMPOSE_SECRETS:
        assert re.search(r"\$\{" + secret + r":\?[^}]+\}", text), f"{secret} is not demanded with ${{{secret}:?...}}"
    query = compose["services"]["query"]["environment"]
    assert query["RUNSTREAM_TOKEN"].startswith("${RUNSTREAM_TOKEN:?")
    assert query["RUNSTREAM_WRITE_TOKEN"].startswith("${RUNSTREAM_WRITE_TOKEN:?")
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    kafka = compose["services"]["kafka"]["environment"]
    assert "PLAINTEXT" not in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].replace("SASL_PLAINTEXT", "")
    for name in ("ingest",):
        env = {k: str(v) for k, v in compose["services"][name]["environment"].items()}
        assert Settings.from_env(env).kafka_security.protocol == "SASL_PLAINTEXT"
    postgres = compose["services"]["postgres"]["environment"]
    assert postgres["POSTGRES_USER"] != "runstream"  # the image's user is a superuser; ours is not
    init = (ROOT / "docker" / "postgres-init.sh").read_text()
    assert "NOSUPERUSER" in init and "OWNER runstream" in init
