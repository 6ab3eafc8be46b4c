"""The Kafka settings every client shares, and the topics runstream makes (or, told so, leaves to an administrator).

Parsing is pure; the topic tests run against the session's broker.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from ops.stack import free_port
from producer import Experiment, LoggingOptions, Workspace, WorkspaceConfigError
from runstream.config import ConfigError, KafkaSecurity, Settings
from runstream.kafka import KafkaSetupError, client_options, ensure_topics, start
from tests.support import eventually


def _file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


# --- parsing ------------------------------------------------------------------------------------


def test_the_local_stack_is_the_default_and_a_bootstrap_means_plaintext(tmp_path: Path) -> None:
    local = Settings.from_env({"RUNSTREAM_HOME": str(tmp_path)}).kafka_security
    assert (local.protocol, local.sasl_mechanism, local.sasl_username) == (
        "SASL_PLAINTEXT",
        "SCRAM-SHA-512",
        "runstream",
    )
    assert local.sasl_password_file == tmp_path / "secrets" / "kafka.password"
    remote = Settings.from_env({"RUNSTREAM_HOME": str(tmp_path), "RUNSTREAM_KAFKA_BOOTSTRAP": "k:9092"})
    assert remote.kafka_security == KafkaSecurity()


def test_every_mistake_names_its_variable(tmp_path: Path) -> None:
    cert, key = _file(tmp_path / "c.pem", "x"), _file(tmp_path / "k.pem", "x")
    remote = {"RUNSTREAM_HOME": str(tmp_path), "RUNSTREAM_KAFKA_BOOTSTRAP": "k:9092"}
    cases = {
        "RUNSTREAM_KAFKA_SECURITY_PROTOCOL='TLS' is not one of": {"RUNSTREAM_KAFKA_SECURITY_PROTOCOL": "TLS"},
        "RUNSTREAM_KAFKA_SASL_MECHANISM='GSSAPI' is not one of": {
            "RUNSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "RUNSTREAM_KAFKA_SASL_MECHANISM": "GSSAPI",
        },
        "needs RUNSTREAM_KAFKA_SASL_USERNAME": {"RUNSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
        "needs RUNSTREAM_KAFKA_SASL_PASSWORD or RUNSTREAM_KAFKA_SASL_PASSWORD_FILE": {
            "RUNSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "RUNSTREAM_KAFKA_SASL_USERNAME": "u",
        },
        "set RUNSTREAM_KAFKA_SASL_PASSWORD or RUNSTREAM_KAFKA_SASL_PASSWORD_FILE, not both": {
            "RUNSTREAM_KAFKA_SASL_PASSWORD": "p",
            "RUNSTREAM_KAFKA_SASL_PASSWORD_FILE": "/x",
        },
        "OAUTHBEARER needs one of RUNSTREAM_KAFKA_OAUTH_TOKEN_FILE or RUNSTREAM_KAFKA_OAUTH_TOKEN_COMMAND": {
            "RUNSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "RUNSTREAM_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
        },
        "needs both RUNSTREAM_KAFKA_SSL_CERTFILE and RUNSTREAM_KAFKA_SSL_KEYFILE": {
            "RUNSTREAM_KAFKA_SECURITY_PROTOCOL": "SSL",
            "RUNSTREAM_KAFKA_SSL_CERTFILE": str(cert),
        },
        "RUNSTREAM_KAFKA_SSL_* files are set but RUNSTREAM_KAFKA_SECURITY_PROTOCOL=PLAINTEXT": {
            "RUNSTREAM_KAFKA_SSL_CERTFILE": str(cert),
            "RUNSTREAM_KAFKA_SSL_KEYFILE": str(key),
        },
        f"RUNSTREAM_KAFKA_SSL_CAFILE={tmp_path}/none.pem: no such file": {
            "RUNSTREAM_KAFKA_SECURITY_PROTOCOL": "SSL",
            "RUNSTREAM_KAFKA_SSL_CAFILE": str(tmp_path / "none.pem"),
        },
        "RUNSTREAM_TOPIC_REPLICATION_FACTOR=0 must be at least 1": {"RUNSTREAM_TOPIC_REPLICATION_FACTOR": "0"},
        "RUNSTREAM_TOPIC_MIN_INSYNC_REPLICAS=3 is above RUNSTREAM_TOPIC_REPLICATION_FACTOR=2": {
            "RUNSTREAM_TOPIC_REPLICATION_FACTOR": "2",
            "RUNSTREAM_TOPIC_MIN_INSYNC_REPLICAS": "3",
        },
        "RUNSTREAM_CREATE_TOPICS='maybe' is not true or false": {"RUNSTREAM_CREATE_TOPICS": "maybe"},
    }
    for message, env in cases.items():
        with pytest.raises(ConfigError, match=message.replace("*", r"\*").replace("(", r"\(")):
            Settings.from_env(remote | env)


def test_secret_files_must_be_private_and_are_read_when_a_client_starts(tmp_path: Path) -> None:
    password = _file(tmp_path / "password", "first\n")
    env = {
        "RUNSTREAM_HOME": str(tmp_path),
        "RUNSTREAM_KAFKA_BOOTSTRAP": "k:9092",
        "RUNSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "RUNSTREAM_KAFKA_SASL_USERNAME": "u",
        "RUNSTREAM_KAFKA_SASL_PASSWORD_FILE": str(password),
    }
    settings = Settings.from_env(env)
    assert client_options(settings)["sasl_plain_password"] == "first"
    _file(password, "rotated")
    assert client_options(settings)["sasl_plain_password"] == "rotated"
    password.chmod(0o640)
    with pytest.raises(
        ConfigError, match=r"RUNSTREAM_KAFKA_SASL_PASSWORD_FILE=.* is readable by other users \(mode 0640\)"
    ):
        client_options(settings)
    password.unlink()
    with pytest.raises(ConfigError, match="RUNSTREAM_KAFKA_SASL_PASSWORD_FILE=.*: no such file"):
        client_options(settings)


def test_as_env_round_trips_and_keeps_secrets_out_of_files(tmp_path: Path) -> None:
    env = {
        "RUNSTREAM_HOME": str(tmp_path),
        "RUNSTREAM_KAFKA_BOOTSTRAP": "k:9092",
        "RUNSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "RUNSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "RUNSTREAM_KAFKA_SASL_USERNAME": "u",
        "RUNSTREAM_KAFKA_SASL_PASSWORD": "s3cret-value",
        "RUNSTREAM_KAFKA_SSL_CAFILE": str(_file(tmp_path / "ca.pem", "x", 0o644)),
        "RUNSTREAM_TOPIC_REPLICATION_FACTOR": "3",
        "RUNSTREAM_TOPIC_MIN_INSYNC_REPLICAS": "2",
        "RUNSTREAM_CREATE_TOPICS": "false",
    }
    settings = Settings.from_env(env)
    assert Settings.from_env(settings.as_env()) == settings
    assert "s3cret-value" not in repr(settings)
    assert "s3cret-value" not in json.dumps(settings.kafka_security.as_env(secrets=False))
    assert (settings.topic_replication_factor, settings.topic_min_insync_replicas, settings.create_topics) == (
        3,
        2,
        False,
    )


def test_a_workspace_reads_kafka_security_from_config_json_but_never_a_secret(tmp_path: Path) -> None:
    password = _file(tmp_path / "kafka.password", "pw")
    security = {
        "RUNSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "RUNSTREAM_KAFKA_SASL_USERNAME": "u",
        "RUNSTREAM_KAFKA_SASL_PASSWORD_FILE": str(password),
    }
    config = tmp_path / "config.json"
    doc = {"kafka_bootstrap": "k:1", "query_url": "http://q:2", "kafka_security": security}
    config.write_text(json.dumps(doc))
    ws = Workspace.from_config(config, env={})
    assert ws.kafka_security.sasl_password_file == password
    assert Workspace.from_config(env=ws.as_env()).kafka_security == ws.kafka_security
    for secret in ("RUNSTREAM_KAFKA_SASL_PASSWORD", "RUNSTREAM_KAFKA_OAUTH_TOKEN_COMMAND"):
        config.write_text(json.dumps(doc | {"kafka_security": security | {secret: "x"}}))
        with pytest.raises(WorkspaceConfigError, match=f"kafka_security may not hold {secret}"):
            Workspace.from_config(config, env={})


# --- topics on the session's broker -----------------------------------------------------------


async def _describe(settings: Settings, topic: str) -> tuple[int, int, dict[str, str]]:
    """(partitions, replicas, configs) of ``topic``, once the broker's metadata shows its partitions."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    try:
        await start(admin, settings)
        (described,) = await eventually(
            lambda: admin.describe_topics([topic]), lambda found: bool(found[0]["partitions"]), what=f"{topic}"
        )
        (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    configs = {entry[0]: entry[1] for entry in response.resources[0][4]}
    partitions = described["partitions"]
    return len(partitions), len(partitions[0]["replicas"]), configs


def _fresh(settings: Settings, **changes: object) -> Settings:
    name = f"topics-{uuid.uuid4().hex[:8]}"
    return dataclasses.replace(
        settings, topic=f"{name}.events", dlq_topic=f"{name}.dead-letter", topic_partitions=3, **changes
    )


async def test_topics_get_partitions_replicas_and_min_insync_replicas(settings: Settings) -> None:
    mine = _fresh(settings, topic_replication_factor=1, topic_min_insync_replicas=1)
    await ensure_topics(mine)
    for topic in (mine.topic, mine.dlq_topic):
        partitions, replicas, configs = await _describe(mine, topic)
        assert (partitions, replicas) == (3, 1)
        assert configs["min.insync.replicas"] == "1"
        assert configs["max.message.bytes"] == str(16 * 1024 * 1024)


async def test_more_replicas_than_brokers_names_the_setting(settings: Settings) -> None:
    with pytest.raises(KafkaSetupError, match="RUNSTREAM_TOPIC_REPLICATION_FACTOR=3: creating topic"):
        await ensure_topics(_fresh(settings, topic_replication_factor=3))


async def test_topics_an_administrator_made_are_used_as_they_are(settings: Settings) -> None:
    mine = _fresh(settings, create_topics=False)
    with pytest.raises(KafkaSetupError, match=r"RUNSTREAM_CREATE_TOPICS=false, and .* does not exist"):
        await ensure_topics(mine)
    admin = AIOKafkaAdminClient(**client_options(mine))
    try:
        await start(admin, mine)
        await admin.create_topics(
            [
                NewTopic(t, 2, 1, topic_configs={"retention.ms": "3600000", "max.message.bytes": "1000000"})
                for t in (mine.topic, mine.dlq_topic)
            ]
        )
    finally:
        await admin.close()
    await ensure_topics(mine)  # they exist: nothing to do, nothing changed
    partitions, _, configs = await _describe(mine, mine.topic)
    assert partitions == 2  # not the 3 of RUNSTREAM_TOPIC_PARTITIONS
    assert configs["retention.ms"] == "3600000"
    assert configs["max.message.bytes"] == "1000000"  # not altered to ours


def test_without_a_local_stack_the_sdk_spools_as_when_kafka_is_down(tmp_path: Path) -> None:
    """No local stack yet (no password file until `runstream up`): a broker not there, not a bad setting."""
    env = {"RUNSTREAM_HOME": str(tmp_path), "RUNSTREAM_KAFKA_PORT": str(free_port())}
    options = LoggingOptions(spill_after_seconds=0.2, request_timeout_seconds=1.0)
    run = Experiment(Workspace.from_config(env=env, options=options), "offline").start_logging(outputs=None)
    run.log("x", 1.0)
    run.complete(timeout_seconds=10)
    stats = run.stats()
    assert (stats["records_sent"], stats["pending"]) == (0, 0)
    assert stats["spooled_records"] >= 1
    assert Path(stats["spool_left"]).is_relative_to(tmp_path / "spool")
