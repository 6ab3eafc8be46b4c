"""Every setting runstream reads, in one place.

Each component builds a :class:`Settings` once (``Settings.from_env()``) and
passes it down; nothing else reads ``os.environ``. Every variable is optional
and the defaults below make a local stack on one machine work out of the box.
The default ports lie below the kernel's ephemeral range (32768 and up), so an
outgoing connection's TIME_WAIT can never hold one when ``runstream up`` binds it.

=================================  ===========================================  ==========================
variable                           meaning                                      default
=================================  ===========================================  ==========================
RUNSTREAM_HOME                     state directory: data, logs, pids, spools    ``./.runstream``
RUNSTREAM_KAFKA_PORT               broker port of the local Kafka               29092
RUNSTREAM_KAFKA_CONTROLLER_PORT    KRaft controller port of the local Kafka     29093
RUNSTREAM_KAFKA_BOOTSTRAP          bootstrap servers (overrides the port)       ``127.0.0.1:<kafka port>``
RUNSTREAM_PG_PORT                  port of the local PostgreSQL                 25432
RUNSTREAM_DATABASE_URL             asyncpg DSN (overrides the port); may carry  the local stack's role and passfile:
                                   ``passfile=``, ``sslmode=verify-full`` and   ``postgresql://runstream@127.0.0.1:``
                                   ``sslrootcert=`` (docs/security.md)          ``<pg port>/runstream?passfile=``
                                                                                ``<home>/secrets/postgres.pgpass``
RUNSTREAM_QUERY_HOST               address the query service binds              127.0.0.1
RUNSTREAM_QUERY_PORT               port of the query service                    28080
RUNSTREAM_QUERY_URL                where clients reach the query service        ``http://127.0.0.1:<query port>``
RUNSTREAM_INGEST_METRICS_PORT      Prometheus port of the first ingest worker   28081
RUNSTREAM_INGEST_METRICS_HOST      address ingest's /metrics, /ready and        127.0.0.1
                                   /health bind (0.0.0.0 in a container)
RUNSTREAM_TOKEN                    bearer token the query service demands       the local stack's ``<home>/
                                   (or RUNSTREAM_TOKEN_FILE, a 0600 file)       secrets/query-read.token``
                                                                                if ``runstream up`` made it,
                                                                                else unset: no auth
RUNSTREAM_WRITE_TOKEN              token that alone may upload, when set        likewise ``query-write.token``,
                                   (or RUNSTREAM_WRITE_TOKEN_FILE)              else RUNSTREAM_TOKEN may
RUNSTREAM_MAX_UPLOAD_BYTES         largest file the query service accepts       1073741824 (1 GiB)
RUNSTREAM_TOPIC                    events topic                                 ``runstream.events``
RUNSTREAM_DLQ_TOPIC                dead-letter topic                            ``runstream.dead-letter``
RUNSTREAM_TOPIC_PARTITIONS         partitions of the events topic               12
RUNSTREAM_GROUP_ID                 ingest consumer group                        ``runstream-ingest``
RUNSTREAM_ARTIFACTS_DIR            artifact store directory                     ``<home>/artifacts``
RUNSTREAM_ARTIFACTS_URL            ``s3://bucket/prefix``: artifacts in an      unset: the directory above
                                   S3-compatible object store (table below)
RUNSTREAM_AUTO_MIGRATE             ingest applies pending migrations at start   true
                                   (``false`` in production: ``runstream
                                   migrate`` is then the one applier)
RUNSTREAM_LOG_FORMAT               ``text`` or ``json`` (one object per line)   text
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
RUNSTREAM_COMPACTION_AGE_SECONDS   how long a series' small chunks wait before  60
                                   ingest merges them, and a large raw chunk
                                   before it is packed (rewrites vs. size)
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

An S3-compatible object store for artifacts (AWS S3, MinIO, GCS's XML API, R2),
used when ``RUNSTREAM_ARTIFACTS_URL`` is ``s3://...``. Credentials come from
these variables or, when unset, AWS's own ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN``; never from anywhere else.

=================================  ===========================================  ==========================
variable                           meaning                                      default
=================================  ===========================================  ==========================
RUNSTREAM_S3_ENDPOINT_URL          the service's URL (MinIO, R2, GCS, moto)     AWS: ``https://s3.<region>.
                                                                                amazonaws.com``
RUNSTREAM_S3_REGION                region the requests are signed for           ``AWS_REGION``, else
                                                                                us-east-1
RUNSTREAM_S3_ADDRESSING_STYLE      ``virtual`` (bucket.host) or ``path``        path with an endpoint URL,
                                   (host/bucket)                                else virtual
RUNSTREAM_S3_ACCESS_KEY_ID         access key id                                ``AWS_ACCESS_KEY_ID``
RUNSTREAM_S3_SECRET_ACCESS_KEY     secret key (read as the store starts)        ``AWS_SECRET_ACCESS_KEY``
RUNSTREAM_S3_SECRET_ACCESS_KEY_FILE  or a 0600 file holding it                  unset
RUNSTREAM_S3_SESSION_TOKEN         temporary credentials' token                 ``AWS_SESSION_TOKEN``
RUNSTREAM_S3_SESSION_TOKEN_FILE    or a 0600 file holding it                    unset
RUNSTREAM_S3_CA_FILE               CA bundle that signs the endpoint's cert     the system's CAs
=================================  ===========================================  ==========================

RUNSTREAM_TOKEN, RUNSTREAM_WRITE_TOKEN and RUNSTREAM_COOKIE_SECRET must be at
least :data:`MIN_SECRET_BYTES` bytes long.

Kafka security and topics (one :class:`KafkaSecurity`, turned into client
arguments by ``runstream.kafka.client_options`` for every client). Without
``RUNSTREAM_KAFKA_BOOTSTRAP`` you talk to the local stack, and the defaults are
its SASL/SCRAM credentials; with it, plain ``PLAINTEXT`` unless you say more.
A secret ``X`` is read from ``RUNSTREAM_X`` or, better, from the file named by
``RUNSTREAM_X_FILE``, which must not be readable by other users (0600).

=======================================  =========================================  ============================
variable                                 meaning                                    default
=======================================  =========================================  ============================
RUNSTREAM_KAFKA_SECURITY_PROTOCOL        PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL   local stack: SASL_PLAINTEXT
RUNSTREAM_KAFKA_SASL_MECHANISM           PLAIN, SCRAM-SHA-256, SCRAM-SHA-512,       SCRAM-SHA-512
                                         OAUTHBEARER
RUNSTREAM_KAFKA_SASL_USERNAME            user of PLAIN and SCRAM                    local stack: ``runstream``
RUNSTREAM_KAFKA_SASL_PASSWORD            its password (read as a client starts)     unset
RUNSTREAM_KAFKA_SASL_PASSWORD_FILE       or a 0600 file holding it                  local stack: ``<home>/
                                                                                    secrets/kafka.password``
RUNSTREAM_KAFKA_OAUTH_TOKEN_FILE         OAUTHBEARER: a file holding the token,     unset
                                         re-read at each connect
RUNSTREAM_KAFKA_OAUTH_TOKEN_COMMAND      OAUTHBEARER: a command printing the        unset
                                         token (run at each connect; no shell)
RUNSTREAM_KAFKA_SSL_CAFILE               CA bundle that signs the brokers' certs    the system's CAs
RUNSTREAM_KAFKA_SSL_CERTFILE             client certificate (mTLS), PEM             unset
RUNSTREAM_KAFKA_SSL_KEYFILE              its private key, PEM (0600)                unset
RUNSTREAM_KAFKA_SSL_KEY_PASSWORD         the key's passphrase, if encrypted         unset
RUNSTREAM_KAFKA_SSL_KEY_PASSWORD_FILE    or a 0600 file holding it                  unset
RUNSTREAM_TOPIC_REPLICATION_FACTOR       replicas of the topics runstream creates   min(3, brokers)
RUNSTREAM_TOPIC_MIN_INSYNC_REPLICAS      their ``min.insync.replicas`` (the         replicas - 1, within 1..2
                                         producers use acks=all)
RUNSTREAM_CREATE_TOPICS                  ``false``: an administrator made the       true
                                         topics; runstream checks they exist and
                                         never creates or alters one
=======================================  =========================================  ============================
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

__all__ = ["MIN_SECRET_BYTES", "ConfigError", "KafkaSecurity", "S3Settings", "Settings", "read_secret_file"]

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


# --- Kafka security and topics ------------------------------------------------------

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
#: the local stack's Kafka user; its password is ``<home>/secrets/kafka.password``
LOCAL_KAFKA_USER = "runstream"
LOCAL_KAFKA_MECHANISM = "SCRAM-SHA-512"


#: The query service's tokens ``runstream up`` makes under ``<home>/secrets``: the defaults of
#: RUNSTREAM_TOKEN and RUNSTREAM_WRITE_TOKEN (the SDK and the service read them alike).
LOCAL_READ_TOKEN = "query-read.token"  # noqa: S105 - a file name, not a secret
LOCAL_WRITE_TOKEN = "query-write.token"  # noqa: S105 - a file name, not a secret


def secrets_dir(home: Path) -> Path:
    """Where the local stack keeps the secrets it generates (0700, files 0600)."""
    return home / "secrets"


def read_secret_file(path: Path, variable: str) -> str:
    """The content of a secret file (without the final newline), if it is ours and only we may read it.

    A secret another user can read, or write, is no secret: refused, like ssh
    and libpq do, with the variable that named the file.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"{variable}={path}: no such file") from None
    mode = info.st_mode
    if info.st_uid != os.geteuid():
        raise ConfigError(f"{variable}={path} belongs to another user (uid {info.st_uid}); a secret must be yours")
    if mode & 0o077:
        raise ConfigError(f"{variable}={path} is readable by other users (mode {mode & 0o777:04o}); chmod 600 it")
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"{variable}={path}: {exc.strerror or exc}") from None


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = (env.get(name) or default).upper()
    if value not in choices:
        raise ConfigError(f"{name}={env.get(name)!r} is not one of {', '.join(choices)}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={env.get(name)!r} is not true or false")


def _file(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name)
    if not raw:
        return None
    path = Path(raw).expanduser().absolute()
    if not path.is_file():
        raise ConfigError(f"{name}={raw}: no such file")
    return path


def _secret(env: Mapping[str, str], name: str, file_name: str) -> tuple[str | None, Path | None]:
    """A secret given as ``name`` or as the file ``file_name`` (read when used), not both."""
    value, file = env.get(name) or None, env.get(file_name) or None
    if value is not None and file is not None:
        raise ConfigError(f"set {name} or {file_name}, not both")
    return value, Path(file).expanduser().absolute() if file else None


@dataclass(frozen=True, kw_only=True)
class KafkaSecurity:
    """How every Kafka client of runstream authenticates and encrypts: one value, validated once.

    Secrets in files are read when a client starts (``sasl_password()``), so a
    rotated password is used by the next client and a missing file is
    reported then, naming its variable; an OAUTHBEARER token at every connect. ``runstream.kafka.client_options``
    turns this into aiokafka's arguments.
    """

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password_value: str | None = field(default=None, repr=False)
    sasl_password_file: Path | None = None
    oauth_token_file: Path | None = None
    oauth_token_command: tuple[str, ...] | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password_value: str | None = field(default=None, repr=False)
    ssl_key_password_file: Path | None = None
    #: the defaults of the local stack were taken (no bootstrap given): a missing
    #: password file then means a stack not started yet, not a wrong setting
    local_stack: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        if self.protocol not in SECURITY_PROTOCOLS:
            raise ConfigError(
                f"RUNSTREAM_KAFKA_SECURITY_PROTOCOL={self.protocol!r} is not one of {', '.join(SECURITY_PROTOCOLS)}"
            )
        if self.sasl and self.sasl_mechanism not in SASL_MECHANISMS:
            raise ConfigError(
                f"RUNSTREAM_KAFKA_SASL_MECHANISM={self.sasl_mechanism!r} is not one of {', '.join(SASL_MECHANISMS)}"
            )
        if self.sasl_mechanism == "OAUTHBEARER":
            if (self.oauth_token_file is None) == (self.oauth_token_command is None):
                raise ConfigError(
                    "OAUTHBEARER needs one of RUNSTREAM_KAFKA_OAUTH_TOKEN_FILE or RUNSTREAM_KAFKA_OAUTH_TOKEN_COMMAND"
                )
        elif self.sasl:
            needs = f"RUNSTREAM_KAFKA_SASL_MECHANISM={self.sasl_mechanism} needs"
            if not self.sasl_username:
                raise ConfigError(f"{needs} RUNSTREAM_KAFKA_SASL_USERNAME")
            if self.sasl_password_value is None and self.sasl_password_file is None:
                raise ConfigError(f"{needs} RUNSTREAM_KAFKA_SASL_PASSWORD or RUNSTREAM_KAFKA_SASL_PASSWORD_FILE")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ConfigError(
                "a client certificate needs both RUNSTREAM_KAFKA_SSL_CERTFILE and RUNSTREAM_KAFKA_SSL_KEYFILE"
            )
        if not self.tls and (self.ssl_cafile or self.ssl_certfile):
            raise ConfigError(
                f"RUNSTREAM_KAFKA_SSL_* files are set but RUNSTREAM_KAFKA_SECURITY_PROTOCOL={self.protocol}"
                " does not use TLS"
            )

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def sasl_password(self) -> str | None:
        """The SASL password, from the file when one is named (read now, so a rotation is seen)."""
        if self.sasl_password_file is not None:
            return read_secret_file(self.sasl_password_file, "RUNSTREAM_KAFKA_SASL_PASSWORD_FILE")
        return self.sasl_password_value

    def ssl_key_password(self) -> str | None:
        if self.ssl_key_password_file is not None:
            return read_secret_file(self.ssl_key_password_file, "RUNSTREAM_KAFKA_SSL_KEY_PASSWORD_FILE")
        return self.ssl_key_password_value

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, home: Path, local: bool) -> KafkaSecurity:
        """Read ``RUNSTREAM_KAFKA_*``; ``local`` (no bootstrap given) makes the local stack's SCRAM user the default."""
        default = "SASL_PLAINTEXT" if local else "PLAINTEXT"
        protocol = _choice(env, "RUNSTREAM_KAFKA_SECURITY_PROTOCOL", SECURITY_PROTOCOLS, default)
        sasl = protocol.startswith("SASL_")
        mechanism = (
            _choice(env, "RUNSTREAM_KAFKA_SASL_MECHANISM", SASL_MECHANISMS, LOCAL_KAFKA_MECHANISM) if sasl else None
        )
        password, password_file = _secret(env, "RUNSTREAM_KAFKA_SASL_PASSWORD", "RUNSTREAM_KAFKA_SASL_PASSWORD_FILE")
        username = env.get("RUNSTREAM_KAFKA_SASL_USERNAME") or None
        local_stack = local and sasl and mechanism != "OAUTHBEARER" and username is None and password is None
        if local_stack:
            username = LOCAL_KAFKA_USER
            password_file = password_file or secrets_dir(home) / "kafka.password"
        command = env.get("RUNSTREAM_KAFKA_OAUTH_TOKEN_COMMAND") or None
        key_password, key_password_file = _secret(
            env, "RUNSTREAM_KAFKA_SSL_KEY_PASSWORD", "RUNSTREAM_KAFKA_SSL_KEY_PASSWORD_FILE"
        )
        return cls(
            protocol=protocol,
            sasl_mechanism=mechanism,
            sasl_username=username if sasl else None,
            sasl_password_value=password if sasl else None,
            sasl_password_file=password_file if sasl else None,
            oauth_token_file=_file(env, "RUNSTREAM_KAFKA_OAUTH_TOKEN_FILE"),
            oauth_token_command=tuple(shlex.split(command)) if command else None,
            ssl_cafile=_file(env, "RUNSTREAM_KAFKA_SSL_CAFILE"),
            ssl_certfile=_file(env, "RUNSTREAM_KAFKA_SSL_CERTFILE"),
            ssl_keyfile=_file(env, "RUNSTREAM_KAFKA_SSL_KEYFILE"),
            ssl_key_password_value=key_password,
            ssl_key_password_file=key_password_file,
            local_stack=local_stack,
        )

    def as_env(self, *, secrets: bool = True) -> dict[str, str]:
        """The variables that make ``from_env`` give this value back.

        ``secrets=False`` leaves out the values that are secrets themselves
        (a password given inline, the token command): what a config file may hold.
        """
        env = {"RUNSTREAM_KAFKA_SECURITY_PROTOCOL": self.protocol}
        optional: dict[str, object] = {
            "RUNSTREAM_KAFKA_SASL_MECHANISM": self.sasl_mechanism,
            "RUNSTREAM_KAFKA_SASL_USERNAME": self.sasl_username,
            "RUNSTREAM_KAFKA_SASL_PASSWORD_FILE": self.sasl_password_file,
            "RUNSTREAM_KAFKA_OAUTH_TOKEN_FILE": self.oauth_token_file,
            "RUNSTREAM_KAFKA_SSL_CAFILE": self.ssl_cafile,
            "RUNSTREAM_KAFKA_SSL_CERTFILE": self.ssl_certfile,
            "RUNSTREAM_KAFKA_SSL_KEYFILE": self.ssl_keyfile,
            "RUNSTREAM_KAFKA_SSL_KEY_PASSWORD_FILE": self.ssl_key_password_file,
        }
        if secrets:
            command = shlex.join(self.oauth_token_command) if self.oauth_token_command else None
            optional |= {
                "RUNSTREAM_KAFKA_SASL_PASSWORD": self.sasl_password_value,
                "RUNSTREAM_KAFKA_SSL_KEY_PASSWORD": self.ssl_key_password_value,
                "RUNSTREAM_KAFKA_OAUTH_TOKEN_COMMAND": command,
            }
        env |= {k: str(v) for k, v in optional.items() if v is not None}
        return env


def _kafka_from_env(env: Mapping[str, str], home: Path) -> dict[str, Any]:
    """The Kafka fields of :class:`Settings`; without a bootstrap, the local stack's security."""
    replication = _int(env, "RUNSTREAM_TOPIC_REPLICATION_FACTOR", 0) or None
    min_insync = _int(env, "RUNSTREAM_TOPIC_MIN_INSYNC_REPLICAS", 0) or None
    if replication is not None and min_insync is not None and min_insync > replication:
        raise ConfigError(
            f"RUNSTREAM_TOPIC_MIN_INSYNC_REPLICAS={min_insync} is above"
            f" RUNSTREAM_TOPIC_REPLICATION_FACTOR={replication}: no write could ever succeed"
        )
    return {
        "kafka_security": KafkaSecurity.from_env(env, home=home, local=not env.get("RUNSTREAM_KAFKA_BOOTSTRAP")),
        "topic_replication_factor": replication,
        "topic_min_insync_replicas": min_insync,
        "create_topics": _bool(env, "RUNSTREAM_CREATE_TOPICS", True),
    }


def _kafka_as_env(settings: Settings) -> dict[str, str]:
    env = settings.kafka_security.as_env()
    env["RUNSTREAM_CREATE_TOPICS"] = "true" if settings.create_topics else "false"
    if settings.topic_replication_factor is not None:
        env["RUNSTREAM_TOPIC_REPLICATION_FACTOR"] = str(settings.topic_replication_factor)
    if settings.topic_min_insync_replicas is not None:
        env["RUNSTREAM_TOPIC_MIN_INSYNC_REPLICAS"] = str(settings.topic_min_insync_replicas)
    return env


def _query_token(env: Mapping[str, str], home: Path, name: str, local_file: str) -> str | None:
    """A query-service token: ``name``, or the file ``name + "_FILE"``, or the local stack's (if it made one)."""
    value, file = _secret(env, name, f"{name}_FILE")
    if value is not None:
        return value
    if file is not None:
        return read_secret_file(file, f"{name}_FILE")
    local = secrets_dir(home) / local_file
    return read_secret_file(local, f"{name} (the local stack's {local})") if local.exists() else None


def _local_database_url(home: Path, pg_port: int) -> str:
    """The local stack's DSN: its ``runstream`` role, the password in a 0600 passfile under ``home``."""
    passfile = quote(str(secrets_dir(home) / "postgres.pgpass"), safe="/")
    return f"postgresql://runstream@127.0.0.1:{pg_port}/runstream?passfile={passfile}"


# --- end of Kafka security and topics ---------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Resolved configuration shared by the SDK, ingest, query and the stack."""

    home: Path = Path(".runstream")
    kafka_port: int = 29092
    kafka_controller_port: int = 29093
    kafka_bootstrap: str = "127.0.0.1:29092"
    pg_port: int = 25432
    database_url: str = "postgresql://runstream@127.0.0.1:25432/runstream"
    query_host: str = "127.0.0.1"
    query_port: int = 28080
    query_url: str = "http://127.0.0.1:28080"
    ingest_metrics_port: int = 28081
    ingest_metrics_host: str = "127.0.0.1"
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
    compaction_age_seconds: float = 60.0
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
    # Kafka security and topics (see the third table above).
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)
    topic_replication_factor: int | None = None
    topic_min_insync_replicas: int | None = None
    create_topics: bool = True
    # Deployment (the fourth table above, and the first's last rows).
    artifacts_url: str | None = None
    s3: S3Settings | None = None
    auto_migrate: bool = True
    log_format: str = "text"

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
        kafka_port = _port(env, "RUNSTREAM_KAFKA_PORT", 29092)
        pg_port = _port(env, "RUNSTREAM_PG_PORT", 25432)
        query_port = _port(env, "RUNSTREAM_QUERY_PORT", 28080)
        return cls(
            home=home,
            kafka_port=kafka_port,
            kafka_controller_port=_port(env, "RUNSTREAM_KAFKA_CONTROLLER_PORT", 29093),
            kafka_bootstrap=env.get("RUNSTREAM_KAFKA_BOOTSTRAP") or f"127.0.0.1:{kafka_port}",
            pg_port=pg_port,
            database_url=env.get("RUNSTREAM_DATABASE_URL") or _local_database_url(home, pg_port),
            query_host=env.get("RUNSTREAM_QUERY_HOST") or "127.0.0.1",
            query_port=query_port,
            query_url=(env.get("RUNSTREAM_QUERY_URL") or f"http://127.0.0.1:{query_port}").rstrip("/"),
            ingest_metrics_port=_port(env, "RUNSTREAM_INGEST_METRICS_PORT", 28081),
            ingest_metrics_host=env.get("RUNSTREAM_INGEST_METRICS_HOST") or "127.0.0.1",
            token=_query_token(env, home, "RUNSTREAM_TOKEN", LOCAL_READ_TOKEN),
            write_token=_query_token(env, home, "RUNSTREAM_WRITE_TOKEN", LOCAL_WRITE_TOKEN),
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
            compaction_age_seconds=_seconds(env, "RUNSTREAM_COMPACTION_AGE_SECONDS", 60.0, zero_ok=True),
            embed_origins=_embed_origins(env),
            workspace_name=env.get("RUNSTREAM_WORKSPACE_NAME") or "runstream",
            subscription_id=env.get("RUNSTREAM_SUBSCRIPTION_ID") or "local",
            resource_group=env.get("RUNSTREAM_RESOURCE_GROUP") or "local",
            location=env.get("RUNSTREAM_LOCATION") or "local",
            read_consistency_seconds=_seconds(env, "RUNSTREAM_READ_CONSISTENCY_SECONDS", 30.0, zero_ok=True),
            **_query_guards_from_env(env),
            **_kafka_from_env(env, home),
            **_deployment_from_env(env),
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
            "RUNSTREAM_INGEST_METRICS_HOST": self.ingest_metrics_host,
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
            "RUNSTREAM_COMPACTION_AGE_SECONDS": repr(self.compaction_age_seconds),
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
        env.update(_kafka_as_env(self))
        env.update(_deployment_as_env(self))
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


# --- deployment: object storage, migrations, logs (issue 16) ---------------------------

LOG_FORMATS = ("text", "json")
S3_ADDRESSING_STYLES = ("virtual", "path")


@dataclass(frozen=True, kw_only=True)
class S3Settings:
    """Where and how the artifact store reaches an S3-compatible service (``RUNSTREAM_ARTIFACTS_URL=s3://...``).

    Secrets given as files are read when the store starts (:meth:`secret_access_key`),
    so a rotated key is used by the next start and a bad file is reported naming its variable.
    """

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str = "us-east-1"
    addressing_style: str = "virtual"
    access_key_id: str | None = None
    secret_access_key_value: str | None = field(default=None, repr=False)
    secret_access_key_file: Path | None = None
    session_token_value: str | None = field(default=None, repr=False)
    session_token_file: Path | None = None
    ca_file: Path | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", self.bucket):
            raise ConfigError(f"RUNSTREAM_ARTIFACTS_URL: {self.bucket!r} is not an S3 bucket name")
        if self.addressing_style not in S3_ADDRESSING_STYLES:
            raise ConfigError(
                f"RUNSTREAM_S3_ADDRESSING_STYLE={self.addressing_style!r} is not one of"
                f" {', '.join(S3_ADDRESSING_STYLES)}"
            )
        if self.endpoint_url is not None and not re.match(r"^https?://[^/?#]+/?$", self.endpoint_url):
            raise ConfigError(f"RUNSTREAM_S3_ENDPOINT_URL={self.endpoint_url!r} is not http(s)://host[:port]")
        if self.access_key_id is None or (self.secret_access_key_value is None and self.secret_access_key_file is None):
            raise ConfigError(
                "RUNSTREAM_ARTIFACTS_URL=s3://... needs credentials: RUNSTREAM_S3_ACCESS_KEY_ID and"
                " RUNSTREAM_S3_SECRET_ACCESS_KEY(_FILE), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )

    def secret_access_key(self) -> str:
        if self.secret_access_key_file is not None:
            return read_secret_file(self.secret_access_key_file, "RUNSTREAM_S3_SECRET_ACCESS_KEY_FILE")
        return self.secret_access_key_value or ""

    def session_token(self) -> str | None:
        if self.session_token_file is not None:
            return read_secret_file(self.session_token_file, "RUNSTREAM_S3_SESSION_TOKEN_FILE")
        return self.session_token_value

    @classmethod
    def from_env(cls, url: str, env: Mapping[str, str]) -> S3Settings:
        match = re.fullmatch(r"s3://([^/]+)(?:/(.*))?", url)
        if match is None:
            raise ConfigError(f"RUNSTREAM_ARTIFACTS_URL={url!r} is not s3://bucket[/prefix]")
        prefix = (match.group(2) or "").strip("/")
        endpoint = env.get("RUNSTREAM_S3_ENDPOINT_URL") or None
        secret, secret_file = _secret(env, "RUNSTREAM_S3_SECRET_ACCESS_KEY", "RUNSTREAM_S3_SECRET_ACCESS_KEY_FILE")
        token, token_file = _secret(env, "RUNSTREAM_S3_SESSION_TOKEN", "RUNSTREAM_S3_SESSION_TOKEN_FILE")
        if secret is None and secret_file is None:
            secret = env.get("AWS_SECRET_ACCESS_KEY") or None
        if token is None and token_file is None:
            token = env.get("AWS_SESSION_TOKEN") or None
        return cls(
            bucket=match.group(1),
            prefix=prefix,
            endpoint_url=endpoint.rstrip("/") if endpoint else None,
            region=env.get("RUNSTREAM_S3_REGION") or env.get("AWS_REGION") or "us-east-1",
            addressing_style=(env.get("RUNSTREAM_S3_ADDRESSING_STYLE") or ("path" if endpoint else "virtual")).lower(),
            access_key_id=env.get("RUNSTREAM_S3_ACCESS_KEY_ID") or env.get("AWS_ACCESS_KEY_ID") or None,
            secret_access_key_value=secret,
            secret_access_key_file=secret_file,
            session_token_value=token,
            session_token_file=token_file,
            ca_file=_file(env, "RUNSTREAM_S3_CA_FILE"),
        )

    def as_env(self) -> dict[str, str]:
        optional: dict[str, object] = {
            "RUNSTREAM_S3_ENDPOINT_URL": self.endpoint_url,
            "RUNSTREAM_S3_REGION": self.region,
            "RUNSTREAM_S3_ADDRESSING_STYLE": self.addressing_style,
            "RUNSTREAM_S3_ACCESS_KEY_ID": self.access_key_id,
            "RUNSTREAM_S3_SECRET_ACCESS_KEY": self.secret_access_key_value,
            "RUNSTREAM_S3_SECRET_ACCESS_KEY_FILE": self.secret_access_key_file,
            "RUNSTREAM_S3_SESSION_TOKEN": self.session_token_value,
            "RUNSTREAM_S3_SESSION_TOKEN_FILE": self.session_token_file,
            "RUNSTREAM_S3_CA_FILE": self.ca_file,
        }
        return {k: str(v) for k, v in optional.items() if v is not None}


def _deployment_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    url = env.get("RUNSTREAM_ARTIFACTS_URL") or None
    if url is not None and not url.startswith("s3://"):
        raise ConfigError(
            f"RUNSTREAM_ARTIFACTS_URL={url!r}: only s3://bucket/prefix; a local directory is RUNSTREAM_ARTIFACTS_DIR"
        )
    log_format = (env.get("RUNSTREAM_LOG_FORMAT") or "text").lower()
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"RUNSTREAM_LOG_FORMAT={env.get('RUNSTREAM_LOG_FORMAT')!r} is not one of text, json")
    return {
        "artifacts_url": url,
        "s3": S3Settings.from_env(url, env) if url else None,
        "auto_migrate": _bool(env, "RUNSTREAM_AUTO_MIGRATE", True),
        "log_format": log_format,
    }


def _deployment_as_env(settings: Settings) -> dict[str, str]:
    env = {
        "RUNSTREAM_AUTO_MIGRATE": "true" if settings.auto_migrate else "false",
        "RUNSTREAM_LOG_FORMAT": settings.log_format,
    }
    if settings.artifacts_url is not None:
        env["RUNSTREAM_ARTIFACTS_URL"] = settings.artifacts_url
    if settings.s3 is not None:
        env.update(settings.s3.as_env())
    return env
