"""A single-node Apache Kafka broker in KRaft mode, resolved from Maven Central and run with java.

It is private by default. The client listener takes SASL/SCRAM-SHA-512 only
(TLS is left off: it listens on loopback); its users - ``runstream`` for every
client, ``broker`` for the broker itself - are written into the metadata log
when the storage is formatted (``--add-scram``), since KRaft keeps SCRAM
credentials there. The KRaft controller listener, on loopback too, takes
SASL/PLAIN with a user of its own, as KRaft cannot check SCRAM before the
metadata is loaded. The passwords come from :mod:`ops.stack._secrets`;
``server.properties`` holds them and is 0600, and the format command reads
them from an argument file, never from its command line (which every local
user can read in ``/proc``).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from ops.stack import _process, _tools
from ops.stack._private import PRIVATE_UMASK, private_dir, write_private
from ops.stack._secrets import StackSecrets
from runstream import kafka
from runstream.config import LOCAL_KAFKA_MECHANISM, LOCAL_KAFKA_USER, Settings

__all__ = ["KafkaBroker", "KafkaCluster", "KafkaNode"]

KAFKA_VERSION = "4.1.1"
_BROKER_USER = "broker"
_CONTROLLER_USER = "controller"
_SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule"
_PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"
# Written once the storage is formatted with our SCRAM users: a home without it
# holds a broker an older runstream made, with no users at all.
_SCRAM_MARKER = "scram-users"
_LOG4J2 = """\
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaServer
        level: INFO
      - name: kafka.server.KafkaRaftServer
        level: INFO
"""


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "runstream" / f"kafka-{KAFKA_VERSION}"


def resolve_jars() -> Path:
    """Download the broker's jars once (Maven's own cache makes later calls quick)."""
    libs = _cache_dir() / "libs"
    marker = _cache_dir() / "resolved"
    if marker.exists():
        return libs
    pom = _cache_dir() / "pom.xml"
    pom.parent.mkdir(parents=True, exist_ok=True)
    pom.write_text(resources.files("ops.stack").joinpath("kafka-pom.xml").read_text(encoding="utf-8"))
    shutil.rmtree(libs, ignore_errors=True)
    result = subprocess.run(  # noqa: S603 - our own argv, no shell
        [
            _tools.maven(),
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
            "-DincludeScope=runtime",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        output = f"{result.stdout[-4000:]}{result.stderr[-2000:]}"
        raise RuntimeError(f"mvn could not resolve Kafka {KAFKA_VERSION}:\n{output}")
    marker.write_text(KAFKA_VERSION)
    return libs


@dataclasses.dataclass(frozen=True)
class KafkaNode:
    """One node of a KRaft cluster: broker and controller in one process, on two loopback ports."""

    id: int
    port: int
    controller_port: int


class KafkaBroker:
    """The broker's files under ``<home>/kafka`` (``kafka-<id>`` for a cluster's nodes) and its process."""

    def __init__(
        self,
        settings: Settings,
        secrets: StackSecrets | None = None,
        *,
        extra_properties: Mapping[str, str] | None = None,
        node: KafkaNode | None = None,
        voters: tuple[KafkaNode, ...] | None = None,
        cluster_id: str | None = None,
    ) -> None:
        """``extra_properties`` override the broker's own (a test's TLS listeners, say). ``node``,
        ``voters`` and ``cluster_id`` make it one node of a :class:`KafkaCluster`."""
        self.settings = settings
        self.secrets = secrets or StackSecrets(settings.home)
        self.extra_properties = dict(extra_properties or {})
        self.node = node or KafkaNode(1, settings.kafka_port, settings.kafka_controller_port)
        self.voters = voters or (self.node,)
        self.cluster_id = cluster_id
        name = "kafka" if node is None else f"kafka-{self.node.id}"
        self.root = settings.home / name
        self.pid_file = settings.home / "pids" / f"{name}.pid"
        self.log_file = settings.home / "logs" / f"{name}.log"

    def _write_config(self) -> Path:
        s, secrets, node = self.settings, self.secrets, self.node
        data = self.root / "data"
        broker_password, controller_password = secrets.kafka_broker_password, secrets.kafka_controller_password
        # Kafka's own topics as durable as the cluster allows: 3 replicas, 2 in sync, on three nodes.
        replicas = min(3, len(self.voters))
        min_isr = str(max(1, replicas - 1))
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node.id),
            "controller.quorum.voters": ",".join(f"{v.id}@127.0.0.1:{v.controller_port}" for v in self.voters),
            "listeners": f"CLIENT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"CLIENT://127.0.0.1:{node.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "CLIENT",
            "listener.security.protocol.map": "CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
            "listener.name.client.sasl.enabled.mechanisms": LOCAL_KAFKA_MECHANISM,
            "sasl.mechanism.inter.broker.protocol": LOCAL_KAFKA_MECHANISM,
            f"listener.name.client.{LOCAL_KAFKA_MECHANISM.lower()}.sasl.jaas.config": (
                f'{_SCRAM} required username="{_BROKER_USER}" password="{broker_password}";'
            ),
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": (
                f'{_PLAIN} required username="{_CONTROLLER_USER}" password="{controller_password}"'
                f' user_{_CONTROLLER_USER}="{controller_password}";'
            ),
            "log.dirs": str(data),
            "num.partitions": str(s.topic_partitions),
            "offsets.topic.replication.factor": str(replicas),
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": str(replicas),
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": str(replicas),
            "share.coordinator.state.topic.min.isr": min_isr,
            "group.initial.rebalance.delay.ms": "0",
            "message.max.bytes": str(16 * 1024 * 1024),
            "auto.create.topics.enable": "false",
            **self.extra_properties,
        }
        private_dir(self.root)
        write_private(self.root / "log4j2.yaml", _LOG4J2)
        config = self.root / "server.properties"
        write_private(config, "".join(f"{k}={v}\n" for k, v in props.items()))
        return config

    def _java(self, libs: Path, *args: str, heap: str = "256m", quick_start: bool = True) -> list[str]:
        """``quick_start``: the client JIT only and the serial collector, for a JVM that runs briefly
        (a tool) or beside two others on a small machine (a cluster's node): less CPU at start."""
        tuning = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"] if quick_start else ["-XX:+UseG1GC"]
        return [
            _tools.java(),
            f"-Xmx{heap}",
            f"-Xms{heap}",
            *tuning,
            f"-Dlog4j2.configurationFile={self.root / 'log4j2.yaml'}",
            "-cp",
            f"{libs}/*",
            *args,
        ]

    def start(self) -> None:
        if self.launch():
            asyncio.run(self.wait_ready())

    def launch(self) -> bool:
        """Format the storage if new and start the process; False if it was running already."""
        if _process.alive(_process.read_pid(self.pid_file)):
            return False
        libs = resolve_jars()
        self.secrets.ensure()
        formatted = (self.root / "data" / "meta.properties").exists()
        if formatted and not (self.root / _SCRAM_MARKER).exists():
            raise RuntimeError(
                f"{self.root} holds a Kafka broker made by an older runstream, without authentication, which"
                " runstream no longer runs. Move it and <home>/postgres aside (or delete them) and run"
                " `runstream up` again for a new, private stack."
            )
        config = self._write_config()
        if not formatted:
            self._format(libs, config)
        # The single broker carries the benchmarks at full speed; a cluster's nodes run the
        # replication tests and chaos scenarios, three to a machine, at a fraction of that load.
        single = len(self.voters) == 1
        _process.spawn_detached(
            self._java(libs, "kafka.Kafka", str(config), heap="1g" if single else "384m", quick_start=not single),
            pid_file=self.pid_file,
            log_file=self.log_file,
            env=os.environ,
        )
        return True

    def set_scram_password(self, user: str, password: str) -> None:
        """Give ``user`` a new SCRAM password on the running broker (ConfigCommand, as the broker's own user).

        Connections already authenticated stay up; the next login needs the
        new password. Arguments and client properties go through 0600 files.
        """
        libs = resolve_jars()
        client = self.root / "admin-client.properties"
        write_private(
            client,
            f"security.protocol=SASL_PLAINTEXT\nsasl.mechanism={LOCAL_KAFKA_MECHANISM}\n"
            f'sasl.jaas.config={_SCRAM} required username="{_BROKER_USER}" '
            f'password="{self.secrets.kafka_broker_password}";\n',
        )
        args = [
            "kafka.admin.ConfigCommand",
            "--bootstrap-server",
            f"127.0.0.1:{self.node.port}",
            "--command-config",
            str(client),
            "--alter",
            "--entity-type",
            "users",
            "--entity-name",
            user,
            "--add-config",
            f"{LOCAL_KAFKA_MECHANISM}=[iterations=8192,password={password}]",
        ]
        try:
            self._run_tool(libs, args, "setting a SCRAM password")
        finally:
            client.unlink(missing_ok=True)

    def _run_tool(self, libs: Path, args: list[str], what: str) -> None:
        """A Kafka tool whose arguments hold secrets: they go in an argument file (0600), never on a command line."""
        # The java launcher expands "@file" into arguments: they never reach /proc/<pid>/cmdline.
        argfile = self.root / "tool.args"
        write_private(argfile, "\n".join(args) + "\n")
        try:
            result = subprocess.run(  # noqa: S603 - our own argv, no shell
                self._java(libs, f"@{argfile}"), capture_output=True, text=True, check=False, umask=PRIVATE_UMASK
            )
        finally:
            argfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise RuntimeError(f"Kafka {what} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")

    def _format(self, libs: Path, config: Path) -> None:
        """Format the storage with the SCRAM users, their passwords passed in an argument file (0600)."""
        secrets = self.secrets
        cluster_id = self.cluster_id or base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        users = {LOCAL_KAFKA_USER: secrets.kafka_password, _BROKER_USER: secrets.kafka_broker_password}
        args = ["kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(config)]
        for name, password in users.items():
            args += ["--add-scram", f"{LOCAL_KAFKA_MECHANISM}=[name={name},password={password}]"]
        self._run_tool(libs, args, "storage format")
        write_private(self.root / _SCRAM_MARKER, f"{LOCAL_KAFKA_MECHANISM}: {', '.join(users)}\n")

    async def wait_ready(self, timeout_seconds: float = 120.0) -> None:
        """Return once a client can create a topic and produce to it."""
        deadline = time.monotonic() + timeout_seconds
        # Refused connections are expected while the broker boots; say nothing of them.
        client_log = logging.getLogger("aiokafka")
        level = client_log.level
        client_log.setLevel(logging.CRITICAL)
        try:
            await self._probe_until_ready(deadline, timeout_seconds)
        finally:
            client_log.setLevel(level)

    async def _probe_until_ready(self, deadline: float, timeout_seconds: float) -> None:
        # The probe's topic is the stack's own: made whatever the user's topic settings say.
        probe = dataclasses.replace(
            self.settings, create_topics=True, topic_replication_factor=None, topic_min_insync_replicas=None
        )
        while True:
            if not _process.alive(_process.read_pid(self.pid_file)):
                raise RuntimeError(f"Kafka exited during start; see {self.log_file}")
            try:
                await kafka.ensure_topics(probe, {"runstream.health": 1})
                producer = AIOKafkaProducer(**kafka.client_options(probe), request_timeout_ms=5000)
                await kafka.start(producer, probe)
                try:
                    await producer.send_and_wait("runstream.health", b"ping")
                finally:
                    await producer.stop()
                return
            except (KafkaError, OSError) as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Kafka not ready after {timeout_seconds}s: {exc!r}") from exc
                await asyncio.sleep(0.5)

    def stop(self, timeout_seconds: float = 60.0) -> bool:
        """SIGTERM, and SIGKILL once ``timeout_seconds`` pass (a killed broker recovers its logs on start)."""
        return _process.stop_pid(self.pid_file, timeout_seconds=timeout_seconds)

    def pid(self) -> int | None:
        pid = _process.read_pid(self.pid_file)
        return pid if _process.alive(pid) else None


class KafkaCluster:
    """Several :class:`KafkaBroker` nodes in one KRaft quorum (every node a broker and a controller),
    formatted with one cluster id and the same SCRAM users: what the replicated-Kafka tests and
    chaos scenarios run. ``start()`` (re)starts whichever node is down and waits for the cluster."""

    def __init__(
        self,
        settings: Settings,
        secrets: StackSecrets,
        nodes: tuple[KafkaNode, ...],
        *,
        extra_properties: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.secrets = secrets
        cluster_id = base64.urlsafe_b64encode(uuid.uuid5(uuid.NAMESPACE_URL, str(settings.home)).bytes)
        self.brokers = [
            KafkaBroker(
                settings,
                secrets,
                extra_properties=extra_properties,
                node=node,
                voters=nodes,
                cluster_id=cluster_id.rstrip(b"=").decode(),
            )
            for node in nodes
        ]
        self.log_file = self.brokers[0].log_file

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{b.node.port}" for b in self.brokers)

    def start(self) -> None:
        # The jars and secrets once, then the nodes formatted and launched side by side: each
        # format is a JVM of its own, and no node can be ready before a quorum of them runs.
        resolve_jars()
        self.secrets.ensure()
        with ThreadPoolExecutor(len(self.brokers)) as pool:
            launched = list(pool.map(KafkaBroker.launch, self.brokers))
        if any(launched):
            asyncio.run(self._wait_ready())

    async def _wait_ready(self, timeout_seconds: float = 120.0) -> None:
        """Ready when a client can produce and every node is a registered broker: topics made
        before that would get fewer replicas than the cluster has nodes."""
        deadline = time.monotonic() + timeout_seconds
        await self.brokers[0].wait_ready(timeout_seconds)
        admin = AIOKafkaAdminClient(**kafka.client_options(self.settings))
        await kafka.start(admin, self.settings)
        try:
            while len((await admin.describe_cluster())["brokers"]) < len(self.brokers):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"not every Kafka node joined the cluster within {timeout_seconds}s")
                await asyncio.sleep(0.2)
        finally:
            await admin.close()

    def stop(self) -> bool:
        # All at once, and not waiting out a controlled shutdown that needs a quorum of nodes
        # that are stopping too: a node SIGKILLed after 10 s recovers its logs when started.
        with ThreadPoolExecutor(len(self.brokers)) as pool:
            return any(list(pool.map(lambda broker: broker.stop(timeout_seconds=10.0), self.brokers)))

    def pid(self) -> int | None:
        """A live node's pid (None when every node is down)."""
        return next((pid for b in self.brokers if (pid := b.pid()) is not None), None)

    def broker(self, node_id: int) -> KafkaBroker:
        return next(b for b in self.brokers if b.node.id == node_id)
