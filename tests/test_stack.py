"""`runstream up / status / down` on a stack of its own: real processes, real ports."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.stack import _ports, free_port
from ops.stack._process import alive
from runstream.config import Settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def stack_env() -> Iterator[dict[str, str]]:
    home = Path(tempfile.mkdtemp(prefix="runstream-cli-"))
    home.chmod(0o755)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")},
        "PYTHONPATH": str(ROOT),
        "RUNSTREAM_HOME": str(home / "state"),
        "RUNSTREAM_KAFKA_PORT": str(free_port()),
        "RUNSTREAM_KAFKA_CONTROLLER_PORT": str(free_port()),
        "RUNSTREAM_PG_PORT": str(free_port()),
        "RUNSTREAM_QUERY_PORT": str(free_port()),
        "RUNSTREAM_INGEST_METRICS_PORT": str(free_port()),
    }
    yield env
    _cli(env, "down")
    shutil.rmtree(home, ignore_errors=True)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _status_rows(out: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in out.splitlines()[1:] if line.strip()}


def test_up_status_down(stack_env: dict[str, str]) -> None:
    up = _cli(stack_env, "up")
    assert up.returncode == 0, up.stdout + up.stderr
    home = Path(stack_env["RUNSTREAM_HOME"])

    status = _cli(stack_env, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    rows = _status_rows(status.stdout)
    assert set(rows) == {"kafka", "postgres", "ingest", "query"}
    assert all(row[3] == "ok" for row in rows.values()), status.stdout
    assert rows["kafka"][2] == stack_env["RUNSTREAM_KAFKA_PORT"]
    assert rows["query"][2] == stack_env["RUNSTREAM_QUERY_PORT"]
    pids = {name: int(row[1]) for name, row in rows.items()}

    config = json.loads((home / "config.json").read_text())
    assert config["kafka_bootstrap"] == f"127.0.0.1:{stack_env['RUNSTREAM_KAFKA_PORT']}"
    with urllib.request.urlopen(config["query_url"] + "/health", timeout=5) as resp:  # noqa: S310
        assert resp.status == 200

    down = _cli(stack_env, "down")
    assert down.returncode == 0, down.stderr
    assert set(down.stdout.split(": ", 1)[1].strip().split(", ")) == {"query", "ingest", "kafka", "postgres"}
    assert not any(alive(pid) for pid in pids.values())
    after = _cli(stack_env, "status")
    assert after.returncode == 1
    assert all(row[3] == "DOWN" for row in _status_rows(after.stdout).values())


def test_a_port_held_by_another_process_stops_up_with_the_setting_named(stack_env: dict[str, str]) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(stack_env["RUNSTREAM_PG_PORT"])))
        squatter.listen()
        up = _cli(stack_env, "up")
    assert up.returncode != 0
    port = stack_env["RUNSTREAM_PG_PORT"]
    assert f"port {port} (RUNSTREAM_PG_PORT, for PostgreSQL) is in use by another process" in up.stderr, up.stderr
    assert "Traceback" not in up.stderr
    assert not (Path(stack_env["RUNSTREAM_HOME"]) / "pids" / "kafka.pid").exists()  # nothing was started


def test_free_ports_never_include_the_stack_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port free now that free_port has not handed out before
        probe.bind(("127.0.0.1", 0))
        spare = probe.getsockname()[1]
    draws = iter([Settings.pg_port, Settings.query_port, Settings.kafka_port, spare])
    monkeypatch.setattr(_ports.random, "randrange", lambda low, high: next(draws))
    assert _ports.free_port() == spare  # the defaults drawn first were passed over
