"""The whole local stack: Kafka, PostgreSQL, the ingest worker and the query service."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from runstream.config import Settings
from runstream.stack import _process
from runstream.stack._health import http_json, http_ok, wait_http_ok
from runstream.stack._kafka import KafkaBroker, ensure_topic
from runstream.stack._postgres import PostgresCluster

__all__ = ["ComponentStatus", "LocalStack", "create_topics"]


@dataclass(frozen=True)
class ComponentStatus:
    """One component's line of ``runstream status``; ``problems`` say why it is not healthy, ``notices``
    what an operator should know anyway (both from ingest's ``/ready``)."""

    name: str
    pid: int | None
    port: int
    healthy: bool
    problems: tuple[str, ...] = ()
    notices: tuple[str, ...] = ()


class LocalStack:
    """Starts and stops the stack's processes; all state lives under ``settings.home``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.kafka = KafkaBroker(settings)
        self.postgres = PostgresCluster(settings)

    @property
    def config_file(self) -> Path:
        return self.settings.home / "config.json"

    def _pid_file(self, name: str) -> Path:
        return self.settings.home / "pids" / f"{name}.pid"

    def start_infrastructure(self) -> None:
        """Kafka and PostgreSQL, the schema migrated and the topics created."""
        from ingest.schema import migrate  # the schema belongs to ingest

        self.settings.home.mkdir(parents=True, exist_ok=True)
        self.kafka.start()
        self.postgres.start()
        asyncio.run(migrate(self.settings.database_url))
        asyncio.run(create_topics(self.settings))

    def start(self) -> None:
        """Everything, then the config file the SDK's ``Workspace.from_config()`` reads."""
        self.start_infrastructure()
        self._start_service("ingest", f"http://127.0.0.1:{self.settings.ingest_metrics_port}/metrics")
        self._start_service("query", f"{self.settings.query_url}/health")
        self.config_file.write_text(
            json.dumps(
                {
                    "kafka_bootstrap": self.settings.kafka_bootstrap,
                    "query_url": self.settings.query_url,
                    "topic": self.settings.topic,
                },
                indent=2,
            )
        )

    def _start_service(self, module: str, health_url: str) -> None:
        pid_file = self._pid_file(module)
        if not _process.alive(_process.read_pid(pid_file)):
            _process.spawn_detached(
                [sys.executable, "-m", module],
                pid_file=pid_file,
                log_file=self.settings.home / "logs" / f"{module}.log",
                env={**os.environ, **self.settings.as_env()},
            )
        asyncio.run(
            wait_http_ok(
                health_url,
                alive=lambda: _process.alive(_process.read_pid(pid_file)),
                exited_message=f"{module} exited during start; see its log under logs/",
            )
        )

    def stop(self) -> list[str]:
        """Stop what ``start`` started, newest first; return the names of those that were running."""
        stopped = [name for name in ("query", "ingest") if _process.stop_pid(self._pid_file(name))]
        if self.kafka.stop():
            stopped.append("kafka")
        if self.postgres.stop():
            stopped.append("postgres")
        return stopped

    def status(self) -> list[ComponentStatus]:
        s = self.settings
        return [
            ComponentStatus("kafka", self.kafka.pid(), s.kafka_port, self.kafka.pid() is not None),
            ComponentStatus("postgres", self.postgres.pid(), s.pg_port, self.postgres.running()),
            self._ingest_status(),
            self._service_status("query", s.query_port, f"{s.query_url}/health"),
        ]

    def _ingest_status(self) -> ComponentStatus:
        """Ingest's readiness: running, and storing what it reads (its ``/ready`` says why not)."""
        port = self.settings.ingest_metrics_port
        pid = _process.read_pid(self._pid_file("ingest"))
        running = _process.alive(pid)
        status, body = http_json(f"http://127.0.0.1:{port}/ready") if running else (0, None)
        body = body if isinstance(body, dict) else {}
        problems = tuple(body.get("reasons", ())) or (() if status in (0, 200) else (f"/ready answered {status}",))
        return ComponentStatus(
            "ingest", pid if running else None, port, status == 200, problems, tuple(body.get("notices", ()))
        )

    def _service_status(self, name: str, port: int, health_url: str) -> ComponentStatus:
        pid = _process.read_pid(self._pid_file(name))
        running = _process.alive(pid)
        return ComponentStatus(name, pid if running else None, port, running and http_ok(health_url))


async def create_topics(settings: Settings) -> None:
    """The events topic (``settings.topic_partitions`` partitions) and the dead-letter topic, unless they exist."""
    await ensure_topic(settings.kafka_bootstrap, settings.topic, settings.topic_partitions)
    await ensure_topic(settings.kafka_bootstrap, settings.dlq_topic, 1)
