"""The whole local stack: Kafka, PostgreSQL, the ingest worker and the query service.

Everything lives under ``settings.home``, which must be ours: a home another
user owns (or may write) is refused, so their pid files can make ``down`` stop
nothing of theirs and their files are never adopted. ``start`` makes it 0700
(see :mod:`ops.stack._private` for root), generates the secrets once,
and writes ``config.json`` (0600) for the SDK's ``Workspace.from_config()``:
the Kafka bootstrap, security protocol, user and password *file* - never a
secret itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ops.stack import _process
from ops.stack._health import http_json, http_ok, wait_http_ok
from ops.stack._kafka import KafkaBroker, KafkaCluster, KafkaNode
from ops.stack._ports import require_free_port
from ops.stack._postgres import PostgresCluster
from ops.stack._private import check_owned, private_dir, tighten, write_private
from ops.stack._secrets import COOKIE_SECRET, StackSecrets, new_secret
from runstream import kafka
from runstream.config import LOCAL_KAFKA_USER, LOCAL_READ_TOKEN, LOCAL_WRITE_TOKEN, Settings

__all__ = ["ROTATABLE", "ComponentStatus", "LocalStack", "create_topics"]

#: What ``runstream rotate-secrets`` renews: Kafka's client user, the service role, the superuser.
ROTATABLE = ("kafka", "postgres", "postgres-admin")


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


#: Each service's port setting and its variable, for the message when another process holds it.
_SERVICE_PORTS = {
    "ingest": ("ingest_metrics_port", "RUNSTREAM_INGEST_METRICS_PORT"),
    "query": ("query_port", "RUNSTREAM_QUERY_PORT"),
}


class LocalStack:
    """Starts and stops the stack's processes; all state lives under ``settings.home``."""

    def __init__(
        self,
        settings: Settings,
        *,
        kafka_nodes: tuple[KafkaNode, ...] = (),
        kafka_properties: Mapping[str, str] | None = None,
    ) -> None:
        """``kafka_nodes``: a replicated KRaft cluster of these nodes instead of one broker
        (``settings.kafka_bootstrap`` must name them all). ``kafka_properties`` override the
        brokers' own."""
        self.settings = settings
        self.secrets = StackSecrets(settings.home)
        self.kafka: KafkaBroker | KafkaCluster = (
            KafkaCluster(settings, self.secrets, kafka_nodes, extra_properties=kafka_properties)
            if kafka_nodes
            else KafkaBroker(settings, self.secrets, extra_properties=kafka_properties)
        )
        self.postgres = PostgresCluster(settings, self.secrets)

    @property
    def config_file(self) -> Path:
        return self.settings.home / "config.json"

    @property
    def admin_dsn(self) -> str:
        """The PostgreSQL superuser's DSN: for the stack's own work, never for a service."""
        return self.postgres.admin_dsn

    def _pid_file(self, name: str) -> Path:
        return self.settings.home / "pids" / f"{name}.pid"

    def _claim_home(self) -> None:
        """The home made private (0700), the directories in it too, the secrets there."""
        home = self.settings.home
        check_owned(home)
        private_dir(home, postgres_passes=True)
        tighten(home, skip=self.postgres.root)
        for name in ("pids", "logs"):
            private_dir(home / name, postgres_passes=name == "logs")
        self.secrets.ensure()

    def start_infrastructure(self) -> None:
        """Kafka and PostgreSQL, the schema migrated and the topics created."""
        from runstream.schema import migrate

        self._claim_home()
        s = self.settings
        if self.kafka.pid() is None:
            require_free_port(s.kafka_port, "RUNSTREAM_KAFKA_PORT", "Kafka")
            require_free_port(s.kafka_controller_port, "RUNSTREAM_KAFKA_CONTROLLER_PORT", "Kafka's controller")
        if not self.postgres.running():
            require_free_port(s.pg_port, "RUNSTREAM_PG_PORT", "PostgreSQL")
        self.kafka.start()
        self.postgres.start()
        asyncio.run(migrate(self.settings.database_url))
        asyncio.run(create_topics(self.settings))

    def start(self) -> None:
        """Everything, then the config file the SDK's ``Workspace.from_config()`` reads.

        The query service demands the tokens the stack made (``secrets/query-*.token``)
        unless the settings name others: no service of the stack is open to other local users.
        """
        self.start_infrastructure()
        self.settings = self._with_query_secrets(self.settings)
        self._start_service("ingest", self._ingest_ready_url)
        self._start_service("query", f"{self.settings.query_url}/health")
        config = {
            "kafka_bootstrap": self.settings.kafka_bootstrap,
            "query_url": self.settings.query_url,
            "topic": self.settings.topic,
            "kafka_security": self.settings.kafka_security.as_env(secrets=False),
        }
        write_private(self.config_file, json.dumps(config, indent=2))

    def _with_query_secrets(self, settings: Settings) -> Settings:
        """``settings`` with the stack's query tokens and cookie key where they name none."""
        return dataclasses.replace(
            settings,
            token=settings.token or self.secrets.read(LOCAL_READ_TOKEN),
            write_token=settings.write_token or self.secrets.read(LOCAL_WRITE_TOKEN),
            cookie_secret_file=(
                settings.cookie_secret_file
                if settings.cookie_secret or settings.cookie_secret_file
                else self.secrets.dir / COOKIE_SECRET
            ),
        )

    @property
    def read_token_file(self) -> Path:
        """The file holding the token a browser signs in with."""
        return self.secrets.dir / LOCAL_READ_TOKEN

    @property
    def _ingest_ready_url(self) -> str:
        # Ready: a member of the group, storing what it reads (not merely serving its metrics).
        return f"http://127.0.0.1:{self.settings.ingest_metrics_port}/ready"

    def _start_service(self, module: str, health_url: str) -> None:
        pid_file = self._pid_file(module)
        if not _process.alive(_process.read_pid(pid_file)):
            port, variable = _SERVICE_PORTS[module]
            require_free_port(getattr(self.settings, port), variable, f"the {module} service")
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

    def rotate_secrets(self, which: Sequence[str] = ROTATABLE) -> list[str]:
        """New passwords for ``which`` of :data:`ROTATABLE`, on the running stack; return what was rotated.

        Each server takes the new password first, then its 0600 file is
        replaced: open connections stay up, new ones use the new password.
        Kafka clients read their password as they start, so a running ingest
        worker is restarted after the Kafka password changes.
        """
        check_owned(self.settings.home)
        unknown = sorted(set(which) - set(ROTATABLE))
        if unknown:
            raise ValueError(f"cannot rotate {', '.join(unknown)}: choose from {', '.join(ROTATABLE)}")
        if not self.postgres.running() or self.kafka.pid() is None:
            raise RuntimeError("the stack is not running: `runstream up` first (rotation talks to its servers)")
        for name in which:
            if name == "kafka":
                if not isinstance(self.kafka, KafkaBroker):
                    raise RuntimeError("rotating the Kafka password is for the single-broker local stack")
                password = new_secret()
                self.kafka.set_scram_password(LOCAL_KAFKA_USER, password)
                self.secrets.write("kafka.password", password)
                if _process.stop_pid(self._pid_file("ingest")):
                    self._start_service("ingest", self._ingest_ready_url)
            else:
                self.postgres.set_password(admin=name == "postgres-admin", password=new_secret())
        return list(which)

    def stop(self) -> list[str]:
        """Stop what ``start`` started, newest first; return the names of those that were running.

        Only processes whose pid file still names them (same command line,
        same start time) are signalled; a stale or forged pid file is dropped.
        """
        check_owned(self.settings.home)
        stopped = [name for name in ("query", "ingest") if _process.stop_pid(self._pid_file(name))]
        if self.kafka.stop():
            stopped.append("kafka")
        if self.postgres.stop():
            stopped.append("postgres")
        return stopped

    def status(self) -> list[ComponentStatus]:
        s = self.settings
        check_owned(s.home)
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
    """The events and dead-letter topics as ``settings`` say (see :func:`runstream.kafka.ensure_topics`)."""
    await kafka.ensure_topics(settings)
