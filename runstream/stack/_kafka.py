"""A single-node Apache Kafka broker in KRaft mode, resolved from Maven Central and run with java."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import shutil
import subprocess
import time
import uuid
from importlib import resources
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from runstream.config import Settings
from runstream.stack import _process, _tools

__all__ = ["KafkaBroker", "ensure_topic"]

KAFKA_VERSION = "4.1.1"
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
    pom.write_text(resources.files("runstream.stack").joinpath("kafka-pom.xml").read_text(encoding="utf-8"))
    shutil.rmtree(libs, ignore_errors=True)
    result = subprocess.run(
        [_tools.maven(), "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
         f"-DoutputDirectory={libs}", "-DincludeScope=runtime"],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"mvn could not resolve Kafka {KAFKA_VERSION}:\n{result.stdout[-4000:]}{result.stderr[-2000:]}")
    marker.write_text(KAFKA_VERSION)
    return libs


async def ensure_topic(bootstrap: str, name: str, partitions: int) -> None:
    """Create ``name`` unless it exists (several callers may race)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()


class KafkaBroker:
    """The broker's files under ``<home>/kafka`` and its process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.home / "kafka"
        self.pid_file = settings.home / "pids" / "kafka.pid"
        self.log_file = settings.home / "logs" / "kafka.log"

    def _write_config(self) -> Path:
        s = self.settings
        data = self.root / "data"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{s.kafka_controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{s.kafka_port},CONTROLLER://127.0.0.1:{s.kafka_controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{s.kafka_port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": str(s.topic_partitions),
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "message.max.bytes": str(16 * 1024 * 1024),
            "auto.create.topics.enable": "false",
        }
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "log4j2.yaml").write_text(_LOG4J2)
        config = self.root / "server.properties"
        config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return config

    def _java(self, libs: Path, *args: str, heap: str = "256m") -> list[str]:
        return [
            _tools.java(), f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={self.root / 'log4j2.yaml'}",
            "-cp", f"{libs}/*", *args,
        ]

    def start(self) -> None:
        if _process.alive(_process.read_pid(self.pid_file)):
            return
        libs = resolve_jars()
        config = self._write_config()
        if not (self.root / "data" / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
            result = subprocess.run(
                self._java(libs, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(config)),
                capture_output=True, text=True, check=False,
            )
            if result.returncode != 0:
                raise RuntimeError(f"Kafka storage format failed:\n{result.stdout}{result.stderr}")
        _process.spawn_detached(
            self._java(libs, "kafka.Kafka", str(config), heap="1g"),
            pid_file=self.pid_file, log_file=self.log_file, env=os.environ,
        )
        asyncio.run(self.wait_ready())

    async def wait_ready(self, timeout_seconds: float = 120.0) -> None:
        """Return once a client can create a topic and produce to it."""
        deadline = time.monotonic() + timeout_seconds
        bootstrap = self.settings.kafka_bootstrap
        # Refused connections are expected while the broker boots; say nothing of them.
        client_log = logging.getLogger("aiokafka")
        level = client_log.level
        client_log.setLevel(logging.CRITICAL)
        try:
            await self._probe_until_ready(bootstrap, deadline, timeout_seconds)
        finally:
            client_log.setLevel(level)

    async def _probe_until_ready(self, bootstrap: str, deadline: float, timeout_seconds: float) -> None:
        while True:
            if not _process.alive(_process.read_pid(self.pid_file)):
                raise RuntimeError(f"Kafka exited during start; see {self.log_file}")
            try:
                await ensure_topic(bootstrap, "runstream.health", 1)
                producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=5000)
                await producer.start()
                try:
                    await producer.send_and_wait("runstream.health", b"ping")
                finally:
                    await producer.stop()
                return
            except (KafkaError, OSError) as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Kafka not ready after {timeout_seconds}s: {exc!r}") from exc
                await asyncio.sleep(0.5)

    def stop(self) -> bool:
        return _process.stop_pid(self.pid_file, timeout_seconds=60)

    def pid(self) -> int | None:
        pid = _process.read_pid(self.pid_file)
        return pid if _process.alive(pid) else None
