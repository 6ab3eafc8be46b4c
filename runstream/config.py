"""Every setting runstream reads, in one place.

Each component builds a :class:`Settings` once (``Settings.from_env()``) and
passes it down; nothing else reads ``os.environ``. Every variable is optional
and the defaults below make a local stack on one machine work out of the box.

=================================  ===========================================  ==========================
variable                           meaning                                      default
=================================  ===========================================  ==========================
RUNSTREAM_HOME                     state directory: data, logs, pids, spools    ``./.runstream``
RUNSTREAM_KAFKA_PORT               broker port of the local Kafka               39092
RUNSTREAM_KAFKA_CONTROLLER_PORT    KRaft controller port of the local Kafka     39093
RUNSTREAM_KAFKA_BOOTSTRAP          bootstrap servers (overrides the port)       ``127.0.0.1:<kafka port>``
RUNSTREAM_PG_PORT                  port of the local PostgreSQL                 35432
RUNSTREAM_DATABASE_URL             asyncpg DSN (overrides the port)             ``postgresql://runstream@127.0.0.1:<pg port>/runstream``
RUNSTREAM_QUERY_HOST               address the query service binds              127.0.0.1
RUNSTREAM_QUERY_PORT               port of the query service                    38080
RUNSTREAM_QUERY_URL                where clients reach the query service        ``http://127.0.0.1:<query port>``
RUNSTREAM_INGEST_METRICS_PORT      Prometheus port of the first ingest worker   38081
RUNSTREAM_TOKEN                    bearer token the query service demands       unset: no auth
RUNSTREAM_WRITE_TOKEN              token that alone may upload, when set        unset: RUNSTREAM_TOKEN may
RUNSTREAM_MAX_UPLOAD_BYTES         largest file the query service accepts       1073741824 (1 GiB)
RUNSTREAM_TOPIC                    events topic                                 ``runstream.events``
RUNSTREAM_DLQ_TOPIC                dead-letter topic                            ``runstream.dead-letter``
RUNSTREAM_TOPIC_PARTITIONS         partitions of the events topic               12
RUNSTREAM_GROUP_ID                 ingest consumer group                        ``runstream-ingest``
RUNSTREAM_ARTIFACTS_DIR            artifact store directory                     ``<home>/artifacts``
RUNSTREAM_RETENTION_DAYS           days ingest keeps points (whole days, by     0: forever
                                   the day stored); 0 keeps them forever
RUNSTREAM_NOT_RESPONDING_AFTER     seconds without data before a Running run    60
                                   turns NotResponding
RUNSTREAM_FAILED_AFTER             seconds without data before it turns         300
                                   Failed ("no heartbeat")
RUNSTREAM_HEARTBEAT_SECONDS        how often the SDK tells ingest a run is      5
                                   alive (keep it well below NOT_RESPONDING)
RUNSTREAM_LIVENESS_SWEEP_SECONDS   how often each ingest worker looks for       5
                                   silent runs; 0 turns the sweep off
RUNSTREAM_INGEST_FLUSH_SECONDS     longest a consumed record waits before       0.05
                                   ingest writes it (freshness vs. batching)
RUNSTREAM_INGEST_FLUSH_POINTS      scalar points that make ingest write at      500000
                                   once (the bound on a worker's memory)
RUNSTREAM_WORKSPACE_NAME           ``Workspace.name`` (Azure ML v1 identity;     runstream
                                   a config.json's ``workspace_name`` wins)
RUNSTREAM_SUBSCRIPTION_ID          ``Workspace.subscription_id``                 local
RUNSTREAM_RESOURCE_GROUP           ``Workspace.resource_group``                  local
RUNSTREAM_LOCATION                 ``Workspace.location``                        local
RUNSTREAM_READ_CONSISTENCY_SECONDS longest an SDK read waits for ingest to       30
                                   store this process's earlier writes, then
                                   raises ReadConsistencyError (0: at once)
=================================  ===========================================  ==========================

The query service's guards (``docs/security.md``, "Query service"):

=================================  ===========================================  ==========================
variable                           meaning                                      default
=================================  ===========================================  ==========================
RUNSTREAM_COOKIE_SECRET            key that signs browser sessions (32+         unset: the file, else a
                                   bytes); a new one signs everyone out         random key per start
RUNSTREAM_COOKIE_SECRET_FILE       file holding that key; must be 0600 (or      unset
                                   0400) and the service user's own
RUNSTREAM_SESSION_MAX_AGE_SECONDS  how long a browser session lasts             43200 (12 hours)
RUNSTREAM_TRUSTED_PROXIES          comma-separated addresses or networks of     unset: trust none
                                   reverse proxies whose X-Forwarded-For and
                                   X-Forwarded-Proto are believed
RUNSTREAM_ALLOWED_HOSTS            comma-separated extra Host names a service   unset: loopback names
                                   without a read token answers; ``*`` any      only
RUNSTREAM_BODY_TIMEOUT_SECONDS     seconds a request body may take, plus one    60
                                   per 16 KiB it holds
RUNSTREAM_EMBED_ORIGINS            origins that may show a run page in a        ``'self'`` and http(s) on
                                   frame (CSP frame-ancestors; Jupyter's         localhost / 127.0.0.1, any
                                   ``RunDetails``); ``'none'`` forbids it        port
=================================  ===========================================  ==========================

RUNSTREAM_TOKEN, RUNSTREAM_WRITE_TOKEN and RUNSTREAM_COOKIE_SECRET must be at
least :data:`MIN_SECRET_BYTES` bytes long.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

__all__ = ["MIN_SECRET_BYTES", "ConfigError", "Settings"]

#: The shortest token or cookie secret accepted: 256 bits, beyond guessing at any rate.
MIN_SECRET_BYTES: Final = 32


class ConfigError(ValueError):
    """A setting has a value runstream cannot use; the message names it."""


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        port = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise ConfigError(f"{name}={port} is outside 1..65535")
    return port


def _seconds(env: Mapping[str, str], name: str, default: float, *, zero_ok: bool = False) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
    if not (value > 0 or (zero_ok and value == 0)) or value == float("inf"):
        what = "zero or a positive" if zero_ok else "a positive"
        raise ConfigError(f"{name}={raw} must be {what} number of seconds")
    return value


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be at least {minimum}")
    return value


#: Loopback origins only: a notebook on this machine may frame a run page, other sites may not.
DEFAULT_EMBED_ORIGINS = "'self' http://localhost:* http://127.0.0.1:* https://localhost:* https://127.0.0.1:*"
# One CSP source expression: a keyword or a scheme/host/port without separators that
# could end the directive (';', ',') or the header.
_CSP_SOURCE = re.compile(r"^('none'|'self'|[a-z][a-z0-9+.-]*:(//)?(\*|\*\.)?[A-Za-z0-9.-]*(:(\*|[0-9]{1,5}))?)$")


def _embed_origins(env: Mapping[str, str]) -> str:
    raw = env.get("RUNSTREAM_EMBED_ORIGINS")
    if raw is None or not raw.strip():
        return DEFAULT_EMBED_ORIGINS
    sources = raw.split()
    for source in sources:
        if not _CSP_SOURCE.match(source):
            raise ConfigError(
                f"RUNSTREAM_EMBED_ORIGINS: {source[:80]!r} is not a CSP source such as 'self', 'none' "
                "or http://host:port"
            )
    if "'none'" in sources and len(sources) > 1:
        raise ConfigError("RUNSTREAM_EMBED_ORIGINS: 'none' cannot be combined with other sources")
    return " ".join(sources)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Resolved configuration shared by the SDK, ingest, query and the stack."""

    home: Path = Path(".runstream")
    kafka_port: int = 39092
    kafka_controller_port: int = 39093
    kafka_bootstrap: str = "127.0.0.1:39092"
    pg_port: int = 35432
    database_url: str = "postgresql://runstream@127.0.0.1:35432/runstream"
    query_host: str = "127.0.0.1"
    query_port: int = 38080
    query_url: str = "http://127.0.0.1:38080"
    ingest_metrics_port: int = 38081
    token: str | None = field(default=None, repr=False)
    write_token: str | None = field(default=None, repr=False)
    max_upload_bytes: int = 1 << 30
    topic: str = "runstream.events"
    dlq_topic: str = "runstream.dead-letter"
    topic_partitions: int = 12
    group_id: str = "runstream-ingest"
    artifacts_dir: Path = Path(".runstream/artifacts")
    retention_days: int = 0
    not_responding_after_seconds: float = 60.0
    failed_after_seconds: float = 300.0
    heartbeat_seconds: float = 5.0
    liveness_sweep_seconds: float = 5.0
    ingest_flush_seconds: float = 0.05
    ingest_flush_points: int = 500_000
    embed_origins: str = DEFAULT_EMBED_ORIGINS
    workspace_name: str = "runstream"
    subscription_id: str = "local"
    resource_group: str = "local"
    location: str = "local"
    read_consistency_seconds: float = 30.0
    # The query service's guards (see the second table above).
    cookie_secret: str | None = field(default=None, repr=False)
    cookie_secret_file: Path | None = None
    session_max_age_seconds: float = 43_200.0
    trusted_proxies: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    body_timeout_seconds: float = 60.0

    def __post_init__(self) -> None:
        _check_query_guards(self)
        if self.failed_after_seconds < self.not_responding_after_seconds:
            raise ConfigError(
                f"RUNSTREAM_FAILED_AFTER={self.failed_after_seconds:g} is below"
                f" RUNSTREAM_NOT_RESPONDING_AFTER={self.not_responding_after_seconds:g}"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read ``RUNSTREAM_*`` variables, falling back to the documented defaults."""
        env = os.environ if env is None else env
        home = Path(env.get("RUNSTREAM_HOME") or ".runstream").absolute()
        kafka_port = _port(env, "RUNSTREAM_KAFKA_PORT", 39092)
        pg_port = _port(env, "RUNSTREAM_PG_PORT", 35432)
        query_port = _port(env, "RUNSTREAM_QUERY_PORT", 38080)
        return cls(
            home=home,
            kafka_port=kafka_port,
            kafka_controller_port=_port(env, "RUNSTREAM_KAFKA_CONTROLLER_PORT", 39093),
            kafka_bootstrap=env.get("RUNSTREAM_KAFKA_BOOTSTRAP") or f"127.0.0.1:{kafka_port}",
            pg_port=pg_port,
            database_url=env.get("RUNSTREAM_DATABASE_URL")
            or f"postgresql://runstream@127.0.0.1:{pg_port}/runstream",
            query_host=env.get("RUNSTREAM_QUERY_HOST") or "127.0.0.1",
            query_port=query_port,
            query_url=(env.get("RUNSTREAM_QUERY_URL") or f"http://127.0.0.1:{query_port}").rstrip("/"),
            ingest_metrics_port=_port(env, "RUNSTREAM_INGEST_METRICS_PORT", 38081),
            token=env.get("RUNSTREAM_TOKEN") or None,
            write_token=env.get("RUNSTREAM_WRITE_TOKEN") or None,
            max_upload_bytes=_int(env, "RUNSTREAM_MAX_UPLOAD_BYTES", 1 << 30),
            topic=env.get("RUNSTREAM_TOPIC") or "runstream.events",
            dlq_topic=env.get("RUNSTREAM_DLQ_TOPIC") or "runstream.dead-letter",
            topic_partitions=_int(env, "RUNSTREAM_TOPIC_PARTITIONS", 12),
            group_id=env.get("RUNSTREAM_GROUP_ID") or "runstream-ingest",
            artifacts_dir=Path(env.get("RUNSTREAM_ARTIFACTS_DIR") or home / "artifacts").absolute(),
            retention_days=_int(env, "RUNSTREAM_RETENTION_DAYS", 0, minimum=0),
            not_responding_after_seconds=_seconds(env, "RUNSTREAM_NOT_RESPONDING_AFTER", 60.0),
            failed_after_seconds=_seconds(env, "RUNSTREAM_FAILED_AFTER", 300.0),
            heartbeat_seconds=_seconds(env, "RUNSTREAM_HEARTBEAT_SECONDS", 5.0),
            liveness_sweep_seconds=_seconds(env, "RUNSTREAM_LIVENESS_SWEEP_SECONDS", 5.0, zero_ok=True),
            ingest_flush_seconds=_seconds(env, "RUNSTREAM_INGEST_FLUSH_SECONDS", 0.05),
            ingest_flush_points=_int(env, "RUNSTREAM_INGEST_FLUSH_POINTS", 500_000),
            embed_origins=_embed_origins(env),
            workspace_name=env.get("RUNSTREAM_WORKSPACE_NAME") or "runstream",
            subscription_id=env.get("RUNSTREAM_SUBSCRIPTION_ID") or "local",
            resource_group=env.get("RUNSTREAM_RESOURCE_GROUP") or "local",
            location=env.get("RUNSTREAM_LOCATION") or "local",
            read_consistency_seconds=_seconds(env, "RUNSTREAM_READ_CONSISTENCY_SECONDS", 30.0, zero_ok=True),
            **_query_guards_from_env(env),
        )

    def as_env(self) -> dict[str, str]:
        """The variables that make a child process resolve to these same settings."""
        env = {
            "RUNSTREAM_HOME": str(self.home),
            "RUNSTREAM_KAFKA_PORT": str(self.kafka_port),
            "RUNSTREAM_KAFKA_CONTROLLER_PORT": str(self.kafka_controller_port),
            "RUNSTREAM_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "RUNSTREAM_PG_PORT": str(self.pg_port),
            "RUNSTREAM_DATABASE_URL": self.database_url,
            "RUNSTREAM_QUERY_HOST": self.query_host,
            "RUNSTREAM_QUERY_PORT": str(self.query_port),
            "RUNSTREAM_QUERY_URL": self.query_url,
            "RUNSTREAM_INGEST_METRICS_PORT": str(self.ingest_metrics_port),
            "RUNSTREAM_TOPIC": self.topic,
            "RUNSTREAM_DLQ_TOPIC": self.dlq_topic,
            "RUNSTREAM_TOPIC_PARTITIONS": str(self.topic_partitions),
            "RUNSTREAM_GROUP_ID": self.group_id,
            "RUNSTREAM_ARTIFACTS_DIR": str(self.artifacts_dir),
            "RUNSTREAM_MAX_UPLOAD_BYTES": str(self.max_upload_bytes),
            "RUNSTREAM_RETENTION_DAYS": str(self.retention_days),
            "RUNSTREAM_NOT_RESPONDING_AFTER": repr(self.not_responding_after_seconds),
            "RUNSTREAM_FAILED_AFTER": repr(self.failed_after_seconds),
            "RUNSTREAM_HEARTBEAT_SECONDS": repr(self.heartbeat_seconds),
            "RUNSTREAM_LIVENESS_SWEEP_SECONDS": repr(self.liveness_sweep_seconds),
            "RUNSTREAM_INGEST_FLUSH_SECONDS": repr(self.ingest_flush_seconds),
            "RUNSTREAM_INGEST_FLUSH_POINTS": str(self.ingest_flush_points),
            "RUNSTREAM_EMBED_ORIGINS": self.embed_origins,
            "RUNSTREAM_WORKSPACE_NAME": self.workspace_name,
            "RUNSTREAM_SUBSCRIPTION_ID": self.subscription_id,
            "RUNSTREAM_RESOURCE_GROUP": self.resource_group,
            "RUNSTREAM_LOCATION": self.location,
            "RUNSTREAM_READ_CONSISTENCY_SECONDS": repr(self.read_consistency_seconds),
        }
        if self.token is not None:
            env["RUNSTREAM_TOKEN"] = self.token
        if self.write_token is not None:
            env["RUNSTREAM_WRITE_TOKEN"] = self.write_token
        env.update(_query_guards_as_env(self))
        return env


# --- the query service's guards (issue 14) ----------------------------------------------


def _check_query_guards(settings: Settings) -> None:
    for name, secret in (
        ("RUNSTREAM_TOKEN", settings.token),
        ("RUNSTREAM_WRITE_TOKEN", settings.write_token),
        ("RUNSTREAM_COOKIE_SECRET", settings.cookie_secret),
    ):
        if secret is not None and len(secret.encode("utf-8", "surrogatepass")) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"{name} is {len(secret.encode('utf-8', 'surrogatepass'))} bytes long; it must have at least"
                f" {MIN_SECRET_BYTES} (make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
    if settings.cookie_secret is not None and settings.cookie_secret_file is not None:
        raise ConfigError("set RUNSTREAM_COOKIE_SECRET or RUNSTREAM_COOKIE_SECRET_FILE, not both")
    for proxy in settings.trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigError(
                f"RUNSTREAM_TRUSTED_PROXIES: {proxy!r} is not an IP address or network (e.g. 10.0.0.0/8)"
            ) from None
    for host in settings.allowed_hosts:
        if host != "*" and (not host or any(c in host for c in "/@?#\\ ") or host != host.strip()):
            raise ConfigError(f"RUNSTREAM_ALLOWED_HOSTS: {host!r} is not a host name")
    for name, seconds in (
        ("RUNSTREAM_SESSION_MAX_AGE_SECONDS", settings.session_max_age_seconds),
        ("RUNSTREAM_BODY_TIMEOUT_SECONDS", settings.body_timeout_seconds),
    ):
        if not 0 < seconds < float("inf"):
            raise ConfigError(f"{name}={seconds:g} must be a positive number of seconds")


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in (env.get(name) or "").split(",") if part.strip())


def _query_guards_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    secret_file = env.get("RUNSTREAM_COOKIE_SECRET_FILE")
    return {
        "cookie_secret": env.get("RUNSTREAM_COOKIE_SECRET") or None,
        "cookie_secret_file": Path(secret_file).absolute() if secret_file else None,
        "session_max_age_seconds": _seconds(env, "RUNSTREAM_SESSION_MAX_AGE_SECONDS", 43_200.0),
        "trusted_proxies": _list(env, "RUNSTREAM_TRUSTED_PROXIES"),
        "allowed_hosts": tuple(h.lower() for h in _list(env, "RUNSTREAM_ALLOWED_HOSTS")),
        "body_timeout_seconds": _seconds(env, "RUNSTREAM_BODY_TIMEOUT_SECONDS", 60.0),
    }


def _query_guards_as_env(settings: Settings) -> dict[str, str]:
    env = {
        "RUNSTREAM_SESSION_MAX_AGE_SECONDS": repr(settings.session_max_age_seconds),
        "RUNSTREAM_TRUSTED_PROXIES": ",".join(settings.trusted_proxies),
        "RUNSTREAM_ALLOWED_HOSTS": ",".join(settings.allowed_hosts),
        "RUNSTREAM_BODY_TIMEOUT_SECONDS": repr(settings.body_timeout_seconds),
    }
    if settings.cookie_secret is not None:
        env["RUNSTREAM_COOKIE_SECRET"] = settings.cookie_secret
    if settings.cookie_secret_file is not None:
        env["RUNSTREAM_COOKIE_SECRET_FILE"] = str(settings.cookie_secret_file)
    return env
