"""runstream against a real broker set up the way a cloud cluster is: TLS with a CA of its own, SASL, mTLS.

One Kafka 4.1 broker, started by this module with certificates it makes
(``tests/tls.py``), listens three ways: SASL_SSL (SCRAM-SHA-512, PLAIN and
OAUTHBEARER), SSL with client certificates required (mTLS), and SASL_SSL
behind a certificate that has expired. The SDK, ingest and the CLI reach it
through the ``RUNSTREAM_KAFKA_*`` settings alone; every setting that is wrong
(a password, a CA, a certificate, a token) must come back as one line that
names it - at once, never as a retry loop that hides the cause.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from ingest import IngestWorker
from ops.stack import free_port
from ops.stack._kafka import KafkaBroker
from producer import DeliveryError, Experiment, LoggingOptions, Workspace
from runstream.config import Settings
from runstream.kafka import KafkaSetupError, client_options, ensure_topics, start
from tests.conftest import Services
from tests.test_ingest_worker import own_database
from tests.tls import Authority, Issued

ROOT = Path(__file__).resolve().parent.parent
_PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"
_SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule"
_OAUTH = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"


@dataclass(frozen=True)
class Cloud:
    home: Path
    sasl_port: int
    mtls_port: int
    expired_port: int
    ca: Authority
    other_ca: Authority
    client: Issued
    client_expired: Issued
    stranger: Issued
    password_file: Path
    plain_password_file: Path

    def env(self, port: int | None = None, **overrides: str | Path | None) -> dict[str, str]:
        """RUNSTREAM_* variables for SCRAM over SASL_SSL on ``port`` (default: the SASL listener)."""
        env: dict[str, str | Path | None] = {
            "RUNSTREAM_HOME": self.home / "client",
            "RUNSTREAM_KAFKA_BOOTSTRAP": f"127.0.0.1:{port or self.sasl_port}",
            "RUNSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "RUNSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "RUNSTREAM_KAFKA_SASL_USERNAME": "runstream",
            "RUNSTREAM_KAFKA_SASL_PASSWORD_FILE": self.password_file,
            "RUNSTREAM_KAFKA_SSL_CAFILE": self.ca.cert,
            "RUNSTREAM_TOPIC": "cloud.events",
            "RUNSTREAM_DLQ_TOPIC": "cloud.dead-letter",
            "RUNSTREAM_TOPIC_PARTITIONS": "2",
            "RUNSTREAM_GROUP_ID": "cloud-ingest",
            **overrides,
        }
        return {k: str(v) for k, v in env.items() if v is not None}

    def settings(self, port: int | None = None, **overrides: str | Path | None) -> Settings:
        return Settings.from_env(self.env(port, **overrides))

    def mtls(self, issued: Issued | None) -> Settings:
        """SSL to the mTLS listener with ``issued`` as the client certificate (None: none)."""
        return self.settings(
            self.mtls_port,
            RUNSTREAM_KAFKA_SECURITY_PROTOCOL="SSL",
            RUNSTREAM_KAFKA_SASL_MECHANISM=None,
            RUNSTREAM_KAFKA_SASL_USERNAME=None,
            RUNSTREAM_KAFKA_SASL_PASSWORD_FILE=None,
            RUNSTREAM_KAFKA_SSL_CERTFILE=issued.cert if issued else None,
            RUNSTREAM_KAFKA_SSL_KEYFILE=issued.key if issued else None,
        )


def _secret_file(path: Path, value: str) -> Path:
    path.write_text(value)
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    home = tmp_path_factory.mktemp("cloud")
    ca, other_ca = Authority(home, "cloud"), Authority(home, "other")
    broker_cert = ca.issue("broker", server=True)
    expired_cert = ca.issue("broker-expired", server=True, expired=True)
    ports = [free_port() for _ in range(4)]
    sasl, mtls, expired, controller = ports
    cloud = Cloud(
        home=home,
        sasl_port=sasl,
        mtls_port=mtls,
        expired_port=expired,
        ca=ca,
        other_ca=other_ca,
        client=ca.issue("client", server=False),
        client_expired=ca.issue("client-expired", server=False, expired=True),
        stranger=other_ca.issue("client", server=False),
        password_file=home / "secrets" / "kafka.password",  # the broker's own secrets (the `runstream` user)
        plain_password_file=_secret_file(home / "plain.password", "plain-" + uuid.uuid4().hex),
    )
    listeners = {"CLIENT": sasl, "MTLS": mtls, "EXPIRED": expired}
    properties = {
        "listeners": ",".join(f"{n}://127.0.0.1:{p}" for n, p in listeners.items())
        + f",CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": ",".join(f"{n}://127.0.0.1:{p}" for n, p in listeners.items()),
        "listener.security.protocol.map": "CLIENT:SASL_SSL,MTLS:SSL,EXPIRED:SASL_SSL,CONTROLLER:SASL_PLAINTEXT",
        "listener.name.client.sasl.enabled.mechanisms": "SCRAM-SHA-512,PLAIN,OAUTHBEARER",
        "listener.name.client.plain.sasl.jaas.config": (
            f'{_PLAIN} required user_plainuser="{cloud.plain_password_file.read_text()}";'
        ),
        # Kafka's default OAUTHBEARER validator takes unsigned JWTs: enough to test the token's path.
        "listener.name.client.oauthbearer.sasl.jaas.config": f"{_OAUTH} required;",
        "listener.name.expired.sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "listener.name.expired.scram-sha-512.sasl.jaas.config": f"{_SCRAM} required;",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(broker_cert.both),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(ca.cert),
        "listener.name.expired.ssl.keystore.location": str(expired_cert.both),
        "listener.name.mtls.ssl.client.auth": "required",
    }
    # The broker keeps its secrets (the `runstream` SCRAM user's password among them) under `home`.
    broker_env = {"RUNSTREAM_HOME": str(home), "RUNSTREAM_KAFKA_PORT": str(sasl)}
    broker_env["RUNSTREAM_KAFKA_CONTROLLER_PORT"] = str(controller)
    broker = KafkaBroker(Settings.from_env(cloud.env() | broker_env), extra_properties=properties)
    broker.start()  # waits until our own client, over SASL_SSL, can create a topic and produce
    try:
        yield cloud
    finally:
        broker.stop()


def _one_line(error: BaseException) -> str:
    message = str(error)
    assert message and "\n" not in message, repr(message)
    return message


async def _refusal(settings: Settings) -> str:
    """The one line an admin client gets from ``settings``, within a few seconds."""
    admin = AIOKafkaAdminClient(**client_options(settings), request_timeout_ms=5000)
    started = time.monotonic()
    try:
        with pytest.raises(KafkaSetupError) as refused:
            await start(admin, settings)
    finally:
        await admin.close()
    assert time.monotonic() - started < 20
    return _one_line(refused.value)


async def _round_trip(settings: Settings) -> list[bytes]:
    """Produce two records and read them back: the settings work for producers and consumers."""
    topic = f"cloud-{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings, {topic: 1})
    producer = AIOKafkaProducer(**client_options(settings), acks="all")
    await start(producer, settings)
    try:
        for value in (b"one", b"two"):
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, **client_options(settings), auto_offset_reset="earliest")
    await start(consumer, settings)
    try:
        got = await consumer.getmany(timeout_ms=10_000, max_records=2)
    finally:
        await consumer.stop()
    return [m.value for batch in got.values() for m in batch]


# --- SASL_SSL -----------------------------------------------------------------------------------


async def test_scram_over_tls_round_trips(cloud: Cloud) -> None:
    assert await _round_trip(cloud.settings()) == [b"one", b"two"]


async def test_plain_over_tls_round_trips(cloud: Cloud) -> None:
    plain = cloud.settings(
        RUNSTREAM_KAFKA_SASL_MECHANISM="PLAIN",
        RUNSTREAM_KAFKA_SASL_USERNAME="plainuser",
        RUNSTREAM_KAFKA_SASL_PASSWORD_FILE=cloud.plain_password_file,
    )
    assert await _round_trip(plain) == [b"one", b"two"]


def _unsigned_jwt(subject: str) -> str:
    def part(doc: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    now = int(time.time())
    return f"{part({'alg': 'none'})}.{part({'sub': subject, 'iat': now, 'exp': now + 3600})}."


async def test_oauthbearer_from_a_token_file_and_from_a_command(cloud: Cloud, tmp_path: Path) -> None:
    token = _secret_file(tmp_path / "token", _unsigned_jwt("runstream"))
    oauth = {"RUNSTREAM_KAFKA_SASL_MECHANISM": "OAUTHBEARER", "RUNSTREAM_KAFKA_SASL_USERNAME": None}
    by_file = cloud.settings(**oauth, RUNSTREAM_KAFKA_SASL_PASSWORD_FILE=None, RUNSTREAM_KAFKA_OAUTH_TOKEN_FILE=token)
    assert await _round_trip(by_file) == [b"one", b"two"]
    by_command = cloud.settings(
        **oauth, RUNSTREAM_KAFKA_SASL_PASSWORD_FILE=None, RUNSTREAM_KAFKA_OAUTH_TOKEN_COMMAND=f"cat {token}"
    )
    assert await _round_trip(by_command) == [b"one", b"two"]

    garbage = _secret_file(tmp_path / "garbage", "not-a-token")
    refused = await _refusal(
        cloud.settings(**oauth, RUNSTREAM_KAFKA_SASL_PASSWORD_FILE=None, RUNSTREAM_KAFKA_OAUTH_TOKEN_FILE=garbage)
    )
    assert refused.startswith("RUNSTREAM_KAFKA_OAUTH_TOKEN_FILE: broker") and "refused the OAUTHBEARER token" in refused
    failing = cloud.settings(
        **oauth, RUNSTREAM_KAFKA_SASL_PASSWORD_FILE=None, RUNSTREAM_KAFKA_OAUTH_TOKEN_COMMAND="false"
    )
    assert (await _refusal(failing)).startswith("RUNSTREAM_KAFKA_OAUTH_TOKEN_COMMAND=false exited with 1")


async def test_a_wrong_password_names_the_password_setting(cloud: Cloud, tmp_path: Path) -> None:
    wrong = _secret_file(tmp_path / "wrong", "not-the-password")
    message = await _refusal(cloud.settings(RUNSTREAM_KAFKA_SASL_PASSWORD_FILE=wrong))
    assert message.startswith("RUNSTREAM_KAFKA_SASL_USERNAME=runstream / RUNSTREAM_KAFKA_SASL_PASSWORD_FILE:")
    assert "refused the credentials (SCRAM-SHA-512)" in message


async def test_a_wrong_ca_names_the_ca_setting(cloud: Cloud) -> None:
    message = await _refusal(cloud.settings(RUNSTREAM_KAFKA_SSL_CAFILE=cloud.other_ca.cert))
    assert message.startswith(f"RUNSTREAM_KAFKA_SSL_CAFILE={cloud.other_ca.cert} does not vouch for")
    assert message.endswith("(self-signed certificate in certificate chain)")  # OpenSSL's reason, kept
    # Without a CA file the system's CAs are used: they do not know this one either.
    message = await _refusal(cloud.settings(RUNSTREAM_KAFKA_SSL_CAFILE=None))
    assert message.startswith("RUNSTREAM_KAFKA_SSL_CAFILE (unset: system CAs) does not vouch for")


async def test_an_expired_broker_certificate_says_so(cloud: Cloud) -> None:
    message = await _refusal(cloud.settings(cloud.expired_port))
    assert message.startswith(f"RUNSTREAM_KAFKA_SSL_CAFILE={cloud.ca.cert}: the certificate of broker")
    assert "certificate has expired" in message


async def test_a_client_without_tls_is_told_the_broker_speaks_tls(cloud: Cloud) -> None:
    for protocol in ("PLAINTEXT", "SASL_PLAINTEXT"):
        message = await _refusal(
            cloud.settings(RUNSTREAM_KAFKA_SECURITY_PROTOCOL=protocol, RUNSTREAM_KAFKA_SSL_CAFILE=None)
        )
        assert message == (
            f"RUNSTREAM_KAFKA_SECURITY_PROTOCOL={protocol}: 127.0.0.1:{cloud.sasl_port} speaks TLS; use SSL or SASL_SSL"
        )


# --- mTLS ---------------------------------------------------------------------------------------


async def test_mtls_with_a_valid_client_certificate_round_trips(cloud: Cloud) -> None:
    assert await _round_trip(cloud.mtls(cloud.client)) == [b"one", b"two"]


async def test_mtls_refusals_name_the_certificate_settings(cloud: Cloud) -> None:
    missing = await _refusal(cloud.mtls(None))
    assert missing.startswith(f"broker 127.0.0.1:{cloud.mtls_port} wants a client certificate (mTLS)")
    assert "RUNSTREAM_KAFKA_SSL_CERTFILE and RUNSTREAM_KAFKA_SSL_KEYFILE" in missing
    expired = await _refusal(cloud.mtls(cloud.client_expired))
    assert expired.startswith(f"RUNSTREAM_KAFKA_SSL_CERTFILE={cloud.client_expired.cert}: broker")
    assert "refused the client certificate: it has expired (on " in expired
    stranger = await _refusal(cloud.mtls(cloud.stranger))
    assert stranger.startswith(f"RUNSTREAM_KAFKA_SSL_CERTFILE={cloud.stranger.cert}: broker")
    assert "refused the client certificate" in stranger


# --- the components -----------------------------------------------------------------------------


def test_the_sdk_logs_over_sasl_ssl_and_stops_at_a_wrong_password(cloud: Cloud, tmp_path: Path) -> None:
    settings = cloud.settings()
    asyncio.run(ensure_topics(settings))
    run = Experiment(Workspace.from_settings(settings), "cloud").start_logging(outputs=None)
    for step in range(1000):
        run.log("loss", 1.0 / (step + 1))
    run.complete(timeout_seconds=30)
    assert run.stats()["records_sent"] >= 1

    wrong = cloud.settings(RUNSTREAM_KAFKA_SASL_PASSWORD_FILE=_secret_file(tmp_path / "wrong", "nope"))
    options = LoggingOptions(request_timeout_seconds=2, spill_after_seconds=0.5)
    refused = Experiment(Workspace.from_settings(wrong, options=options), "cloud").start_logging(outputs=None)
    refused.log("loss", 1.0)
    with pytest.raises(DeliveryError, match="RUNSTREAM_KAFKA_SASL_PASSWORD_FILE.*refused the credentials"):
        refused.flush(timeout_seconds=30)
    assert refused.stats()["spooled_records"] == 0
    with pytest.raises(DeliveryError):
        refused.complete(timeout_seconds=10)


@pytest_asyncio.fixture
async def cloud_database(services: Services) -> AsyncIterator[str]:
    async with own_database(services.admin_dsn) as dsn:
        yield dsn


async def test_ingest_consumes_over_sasl_ssl(cloud: Cloud, cloud_database: str) -> None:
    """Ingest's admin, consumer and dead-letter producer all on the secured cluster: a run lands in PostgreSQL."""
    settings = cloud.settings(
        RUNSTREAM_DATABASE_URL=cloud_database,
        RUNSTREAM_TOPIC=f"cloud-ingest-{uuid.uuid4().hex[:6]}.events",
        RUNSTREAM_INGEST_METRICS_PORT=str(free_port()),
    )
    async with IngestWorker(settings, metrics_port=0):
        run = await asyncio.to_thread(
            lambda: Experiment(Workspace.from_settings(settings), "cloud").start_logging(outputs=None)
        )
        await asyncio.to_thread(lambda: [run.log("loss", float(i)) for i in range(500)])
        await asyncio.to_thread(run.complete, timeout_seconds=30)
        conn = await asyncpg.connect(cloud_database)
        try:
            deadline = time.monotonic() + 60
            while (status := await conn.fetchval("SELECT status FROM runs WHERE id = $1", uuid.UUID(run.id))) != (
                "Completed"
            ):
                assert time.monotonic() < deadline, status
                await asyncio.sleep(0.1)
        finally:
            await conn.close()


def test_the_cli_reads_dead_letters_over_sasl_ssl_and_names_a_wrong_ca(cloud: Cloud) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")} | {"PYTHONPATH": str(ROOT)}
    listed = subprocess.run(
        [sys.executable, "-m", "ops.cli", "dlq", "list"],
        env=env | cloud.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip().endswith("dead letter(s) in cloud.dead-letter")
    refused = subprocess.run(
        [sys.executable, "-m", "ops.cli", "dlq", "list"],
        env=env | cloud.env(RUNSTREAM_KAFKA_SSL_CAFILE=str(cloud.other_ca.cert)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2
    assert refused.stderr.startswith("runstream dlq: RUNSTREAM_KAFKA_SSL_CAFILE=") and refused.stderr.count("\n") == 1
