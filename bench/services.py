"""The services a benchmark runs against.

:class:`Infra` is Kafka plus PostgreSQL: by default a :class:`LocalStack` of
our own in a fresh state directory on free ports (stopped at the end), or
already-running services given on the command line while developing.
:class:`Sandbox` is one experiment's private database, topic and consumer
group with its ingest workers and query service; :class:`MlflowServer` is the
MLflow tracking server the baselines talk to, on the same PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from bench.proc import BENCH_PYTHON, Service, child_env, free_port, peak_rss_bytes
from ops.stack import KafkaNode, LocalStack, create_topics
from runstream import kafka
from runstream.config import LOCAL_KAFKA_MECHANISM, LOCAL_KAFKA_USER, KafkaSecurity, Settings, secrets_dir
from runstream.dsn import with_database

__all__ = ["Infra", "MlflowServer", "Sandbox"]


class Infra:
    """Kafka and PostgreSQL, and a state directory for everything the run writes.

    ``stack`` is the :class:`LocalStack` that :meth:`start_local` made (None for
    services that already ran): the chaos suite stops and starts its Kafka and
    PostgreSQL. ``kafka_security`` is how to reach Kafka (the local stack's
    SASL user, or the ``RUNSTREAM_KAFKA_*`` variables for existing services);
    ``admin_dsn`` is a role that may create databases - not a superuser.
    """

    def __init__(
        self,
        *,
        kafka_bootstrap: str,
        kafka_security: KafkaSecurity,
        admin_dsn: str,
        home: Path,
        stack: LocalStack | None = None,
    ) -> None:
        self.kafka_bootstrap = kafka_bootstrap
        self.kafka_security = kafka_security
        self.admin_dsn = admin_dsn
        self.home = home
        self.stack = stack

    @property
    def superuser_dsn(self) -> str | None:
        """The superuser of a stack this bench started (for CHECKPOINT), None for services it was given."""
        return self.stack.admin_dsn if self.stack is not None else None

    @classmethod
    def start_local(cls, *, kafka_brokers: int = 1, kafka_properties: Mapping[str, str] | None = None) -> Infra:
        """A stack of our own, private to us (the stack sets the home's mode).

        ``kafka_brokers`` > 1: a replicated KRaft cluster of that many nodes (same jars, same
        SCRAM users); the topics get min(3, brokers) replicas and min.insync.replicas one less.
        ``kafka_properties`` override the brokers' own.
        """
        home = Path(tempfile.mkdtemp(prefix="runstream-bench-"))
        nodes = tuple(KafkaNode(i, free_port(), free_port()) for i in range(1, kafka_brokers + 1))
        env = {
            "RUNSTREAM_HOME": str(home),
            "RUNSTREAM_KAFKA_PORT": str(nodes[0].port),
            "RUNSTREAM_KAFKA_CONTROLLER_PORT": str(nodes[0].controller_port),
            "RUNSTREAM_PG_PORT": str(free_port()),
        }
        if kafka_brokers > 1:
            env |= {
                "RUNSTREAM_KAFKA_BOOTSTRAP": ",".join(f"127.0.0.1:{n.port}" for n in nodes),
                "RUNSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "RUNSTREAM_KAFKA_SASL_MECHANISM": LOCAL_KAFKA_MECHANISM,
                "RUNSTREAM_KAFKA_SASL_USERNAME": LOCAL_KAFKA_USER,
                "RUNSTREAM_KAFKA_SASL_PASSWORD_FILE": str(secrets_dir(home) / "kafka.password"),
            }
        settings = Settings.from_env(env)
        stack = LocalStack(settings, kafka_nodes=nodes if kafka_brokers > 1 else (), kafka_properties=kafka_properties)
        try:
            stack.start_infrastructure()
        except BaseException:
            stack.stop()
            raise
        return cls(
            kafka_bootstrap=settings.kafka_bootstrap,
            kafka_security=settings.kafka_security,
            admin_dsn=with_database(settings.database_url, "postgres"),
            home=home,
            stack=stack,
        )

    @classmethod
    def existing(cls, kafka_bootstrap: str, admin_dsn: str) -> Infra:
        """Services that run already; Kafka's security from the ``RUNSTREAM_KAFKA_*`` variables."""
        home = Path(tempfile.mkdtemp(prefix="runstream-bench-"))
        security = KafkaSecurity.from_env(os.environ, home=home, local=False)
        return cls(kafka_bootstrap=kafka_bootstrap, kafka_security=security, admin_dsn=admin_dsn, home=home)

    def dsn(self, database: str) -> str:
        return with_database(self.admin_dsn, database)

    @contextlib.asynccontextmanager
    async def _admin(self) -> AsyncIterator[asyncpg.Connection]:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            yield conn
        finally:
            await conn.close()

    async def create_database(self, name: str) -> str:
        async with self._admin() as conn:
            await conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    async def drop_database(self, name: str, *, wait_seconds: float = 30.0) -> None:
        """Drop ``name`` once its sessions are gone (waiting up to ``wait_seconds``).

        Not ``WITH (FORCE)``: that fails outright when a process it may not signal is on the database,
        and an autovacuum worker is one (seen once in CI, after restart-query). Instead this role's
        sessions are ended (a service just stopped may still be exiting), and DROP itself cancels
        autovacuum workers and waits a few seconds for the rest; it is retried until the deadline.
        """
        deadline = time.monotonic() + wait_seconds
        async with self._admin() as conn:
            while True:
                await conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = $1 AND usename = current_user AND pid <> pg_backend_pid()",
                    name,
                )
                try:
                    await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
                    return
                except asyncpg.ObjectInUseError:
                    if time.monotonic() > deadline:
                        raise

    async def server_version(self) -> str:
        async with self._admin() as conn:
            return str(await conn.fetchval("SHOW server_version"))

    def close(self, keep_home: bool = False) -> None:
        if self.stack is not None:
            self.stack.stop()
        if not keep_home:
            shutil.rmtree(self.home, ignore_errors=True)


async def delete_topics(target: kafka.KafkaTarget, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(**kafka.client_options(target))
    try:
        await kafka.start(admin, target)
        await admin.delete_topics(names)
    except KafkaError:
        pass  # best effort: the whole stack goes away at the end anyway
    finally:
        await admin.close()


async def group_members(target: kafka.KafkaTarget, group: str) -> tuple[str, int]:
    """(state, number of members with an assignment) of a consumer group."""
    admin = AIOKafkaAdminClient(**kafka.client_options(target))
    try:
        await kafka.start(admin, target)
        responses = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    for response in responses:
        for entry in response.groups:
            state, members = entry[2], entry[5]
            return str(state), sum(1 for m in members if m[-1])
    return "Unknown", 0


class Sandbox:
    """A private database (migrated), topic and consumer group; ingest workers and a query service on them."""

    def __init__(self, infra: Infra, tag: str, *, partitions: int = 12) -> None:
        self.infra = infra
        self.name = f"bench_{tag}_{uuid.uuid4().hex[:8]}"
        self.partitions = partitions
        self.home = infra.home / self.name
        self.workers: list[Service] = []
        self.query: Service | None = None
        self._worker_ports: list[int] = []
        self.settings = Settings.from_env(
            {
                "RUNSTREAM_HOME": str(self.home),
                "RUNSTREAM_KAFKA_BOOTSTRAP": infra.kafka_bootstrap,
                **infra.kafka_security.as_env(),
                "RUNSTREAM_DATABASE_URL": infra.dsn(self.name),
                "RUNSTREAM_TOPIC": f"{self.name}.events",
                "RUNSTREAM_DLQ_TOPIC": f"{self.name}.dead-letter",
                "RUNSTREAM_TOPIC_PARTITIONS": str(partitions),
                "RUNSTREAM_GROUP_ID": f"{self.name}-ingest",
                "RUNSTREAM_QUERY_PORT": str(free_port()),
                "RUNSTREAM_INGEST_METRICS_PORT": str(free_port()),
            }
        )

    async def __aenter__(self) -> Sandbox:
        self.home.mkdir(parents=True, exist_ok=True)
        await self.infra.create_database(self.name)
        from runstream.schema import migrate  # the schema belongs to ingest

        await migrate(self.settings.database_url)
        await create_topics(self.settings)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def env(self, **overrides: str) -> dict[str, str]:
        return child_env({**self.settings.as_env(), **overrides})

    async def start_ingest(self, workers: int) -> None:
        """``workers`` ``python -m ingest`` processes, returned once the group has assigned all of them."""
        for _ in range(workers):
            port = self.settings.ingest_metrics_port if not self._worker_ports else free_port()
            self._worker_ports.append(port)
            service = Service(
                f"ingest-{len(self.workers)}",
                [sys.executable, "-m", "ingest"],
                env=self.env(RUNSTREAM_INGEST_METRICS_PORT=str(port)),
                log_file=self.home / f"ingest-{len(self.workers)}.log",
            )
            self.workers.append(service)
        for service, port in zip(self.workers, self._worker_ports, strict=True):
            await service.wait_http_ok(f"http://127.0.0.1:{port}/metrics")
        await self._wait_group(workers)

    async def _wait_group(self, workers: int, timeout_seconds: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_seconds
        state, members = "Unknown", 0
        while time.monotonic() < deadline:
            try:
                state, members = await group_members(self.settings, self.settings.group_id)
            except KafkaError:
                pass
            if state == "Stable" and members >= min(workers, self.partitions):
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(
            f"ingest group {self.settings.group_id} not stable with {workers} members: {state}/{members}"
        )

    async def start_query(self) -> str:
        self.query = Service("query", [sys.executable, "-m", "query"], env=self.env(), log_file=self.home / "query.log")
        await self.query.wait_http_ok(f"{self.settings.query_url}/health")
        return self.settings.query_url

    @property
    def worker_metrics_urls(self) -> list[str]:
        """Each ingest worker's Prometheus endpoint."""
        return [f"http://127.0.0.1:{port}/metrics" for port in self._worker_ports]

    def worker_peak_rss(self) -> list[int]:
        return [rss for w in self.workers if (rss := peak_rss_bytes(w.pid)) is not None]

    def check_alive(self) -> None:
        for service in [*self.workers, *([self.query] if self.query else [])]:
            if not service.alive():
                raise RuntimeError(f"{service.name} died:\n{service.log_tail()}")

    async def close(self) -> None:
        for service in [*([self.query] if self.query else []), *self.workers]:
            await asyncio.to_thread(service.stop)
        await self.infra.drop_database(self.name)
        await delete_topics(self.settings, [self.settings.topic, self.settings.dlq_topic])


class MlflowServer:
    """``mlflow server --workers 1`` on a ``postgresql+psycopg2://`` store in our PostgreSQL.

    One worker because with several every keep-alive request stalls about 40 ms
    on this machine; uvicorn's access log is off so that it costs nothing.
    """

    def __init__(self, infra: Infra) -> None:
        self.infra = infra
        self.database = f"bench_mlflow_{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.service: Service | None = None

    @property
    def store_uri(self) -> str:
        return "postgresql+psycopg2://" + self.infra.dsn(self.database).split("://", 1)[1]

    async def __aenter__(self) -> MlflowServer:
        await self.infra.create_database(self.database)
        artifacts = self.infra.home / "mlflow-artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        argv = [
            str(BENCH_PYTHON.parent / "mlflow"),
            "server",
            "--workers",
            "1",
            "--backend-store-uri",
            self.store_uri,
            "--default-artifact-root",
            artifacts.as_uri(),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--uvicorn-opts",
            "--no-access-log",
        ]
        self.service = Service("mlflow", argv, env=child_env(), log_file=self.infra.home / "mlflow.log")
        await self.service.wait_http_ok(f"{self.url}/health", timeout_seconds=180)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.service is not None:
            await asyncio.to_thread(self.service.stop)
        await self.infra.drop_database(self.database)

    def dsn(self) -> str:
        return self.infra.dsn(self.database)
