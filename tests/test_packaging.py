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
