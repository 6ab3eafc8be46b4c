"""Every Kafka client's connection arguments, the topics, and a clear error when the setup is wrong.

:func:`client_options` turns the bootstrap servers and a
:class:`~runstream.config.KafkaSecurity` into aiokafka's keyword arguments.
The SDK's producer, ingest's consumer, dead-letter producer and admin,
``runstream sync``, ``runstream dlq``, the stack, the benchmark and the chaos
suite all build their clients with it, so one set of ``RUNSTREAM_KAFKA_*``
variables reaches a secured cluster from every one of them.

Why :func:`start` rather than ``client.start()``: aiokafka logs why a
bootstrap connection failed (a refused password, an unknown CA, an expired
certificate) and raises a bare "Unable to bootstrap", which every caller
would retry as if the broker were down, hiding the cause for as long as it
retries. ``start`` calls ``client.start()`` and, when it fails that way, opens
a connection of its own to learn the cause (:func:`diagnose`). A cause no
retry can fix becomes a :class:`KafkaSetupError`, one line that names the
setting; anything else (a broker that is down or restarting) is re-raised for
the caller to retry or spool.

:func:`ensure_topics` makes the events and dead-letter topics with the
configured partitions, replication factor and ``min.insync.replicas``, or,
with ``RUNSTREAM_CREATE_TOPICS=false``, only checks that an administrator made
them.
"""

from __future__ import annotations

import _ssl
import asyncio
import contextlib
import logging
import ssl
import struct
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Protocol

from aiokafka.abc import AbstractTokenProvider
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import collect_hosts, create_conn
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    IllegalSaslStateError,
    InvalidReplicationFactorError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
    UnsupportedSaslMechanismError,
    for_code,
)

from runstream.config import ConfigError, KafkaSecurity, Settings, read_secret_file
from runstream.events import MAX_RECORD_BYTES

__all__ = [
    "TOPIC_MAX_MESSAGE_BYTES",
    "KafkaSetupError",
    "KafkaTarget",
    "client_options",
    "diagnose",
    "ensure_topics",
    "start",
]

log = logging.getLogger(__name__)

#: ``max.message.bytes`` of the topics runstream creates: above the format's
#: limit, so that an oversized record reaches ingest and is dead-lettered with
#: its reason instead of failing in the producer.
TOPIC_MAX_MESSAGE_BYTES: Final = 2 * MAX_RECORD_BYTES
_PROBE_TIMEOUT_SECONDS: Final = 10.0
# How long a probe waits for the broker's verdict on its certificate (TLS 1.3 sends it after the handshake).
_VERDICT_SECONDS: Final = 0.5
_TOKEN_COMMAND_TIMEOUT_SECONDS: Final = 30.0
_P: Final = "RUNSTREAM_KAFKA_"


class KafkaSetupError(ConfigError):
    """Kafka refused the connection for a reason that only a setting can fix; the message names it."""


class KafkaTarget(Protocol):
    """Where and how to connect: :class:`~runstream.config.Settings` and the SDK's ``Workspace`` both are."""

    @property
    def kafka_bootstrap(self) -> str: ...

    @property
    def kafka_security(self) -> KafkaSecurity: ...


def client_options(target: KafkaTarget) -> dict[str, Any]:
    """aiokafka keyword arguments (bootstrap servers, TLS, SASL) for any client: producer, consumer, admin.

    Reads the secret files now: a missing or world-readable one is a
    :class:`~runstream.config.ConfigError` naming its variable - but for the
    local stack's own password file, whose absence means the stack was never
    started: that is a broker not there yet, retried (and spooled) as such.
    """
    security = target.kafka_security
    file = security.sasl_password_file
    if security.local_stack and file is not None and not file.exists():
        raise KafkaConnectionError(f"no local stack in {file.parent.parent} yet (no {file.name}): `runstream up`")
    options: dict[str, Any] = {"bootstrap_servers": target.kafka_bootstrap, "security_protocol": security.protocol}
    if security.tls:
        options["ssl_context"] = ssl_context(security)
    if security.sasl:
        options["sasl_mechanism"] = security.sasl_mechanism
        if security.sasl_mechanism == "OAUTHBEARER":
            options["sasl_oauth_token_provider"] = TokenProvider(security)
        else:
            options["sasl_plain_username"] = security.sasl_username
            options["sasl_plain_password"] = security.sasl_password()
    return options


def ssl_context(security: KafkaSecurity) -> ssl.SSLContext:
    """Verify the broker against the CA file (the system's CAs without one) and its host name; mTLS if set."""
    try:
        context = ssl.create_default_context(cafile=security.ssl_cafile)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"{_P}SSL_CAFILE={security.ssl_cafile}: not a PEM certificate bundle ({exc})") from None
    if security.ssl_certfile is not None and security.ssl_keyfile is not None:
        # The key is a secret: refuse one other users can read, as for any secret file.
        read_secret_file(security.ssl_keyfile, f"{_P}SSL_KEYFILE")
        try:
            context.load_cert_chain(security.ssl_certfile, security.ssl_keyfile, password=security.ssl_key_password())
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"{_P}SSL_CERTFILE={security.ssl_certfile} with {_P}SSL_KEYFILE={security.ssl_keyfile}:"
                f" not a PEM certificate and its key ({exc})"
            ) from None
    return context


class TokenError(KafkaError):  # type: ignore[misc]  # aiokafka is untyped
    """The OAUTHBEARER token could not be read or made; aiokafka treats it as a failed connection."""

    retriable = True


class TokenProvider(AbstractTokenProvider):  # type: ignore[misc]  # aiokafka is untyped
    """OAUTHBEARER tokens from a file (re-read at every connection) or a command's output (run every time).

    The command runs without a shell (its words as ``shlex`` splits them).
    For MSK with IAM, ``aws-msk-iam-sasl-signer`` prints such a token; an
    identity provider's CLI does for Confluent Cloud or Azure Event Hubs.
    """

    def __init__(self, security: KafkaSecurity) -> None:
        self._file = security.oauth_token_file
        self._command = security.oauth_token_command

    async def token(self) -> str:
        if self._command is not None:
            value = await self._run(self._command)
            what = f"{_P}OAUTH_TOKEN_COMMAND"
        else:
            try:
                value = read_secret_file(self._file, f"{_P}OAUTH_TOKEN_FILE").strip() if self._file else ""
            except ConfigError as exc:
                raise TokenError(str(exc)) from None
            what = f"{_P}OAUTH_TOKEN_FILE={self._file}"
        if not value:
            raise TokenError(f"{what} gave an empty token")
        return value

    @staticmethod
    async def _run(command: tuple[str, ...]) -> str:
        name = f"{_P}OAUTH_TOKEN_COMMAND={command[0]}"
        try:
            proc = await asyncio.create_subprocess_exec(
                *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
        except (OSError, RuntimeError) as exc:  # RuntimeError: no new thread to watch it, at interpreter exit
            raise TokenError(f"{name}: cannot run it ({getattr(exc, 'strerror', None) or exc})") from None
        try:
            out, err = await asyncio.wait_for(proc.communicate(), _TOKEN_COMMAND_TIMEOUT_SECONDS)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise TokenError(f"{name}: no token within {_TOKEN_COMMAND_TIMEOUT_SECONDS:g}s") from None
        if proc.returncode != 0:
            first = (err.decode(errors="replace").strip().splitlines() or [""])[0][:200]
            raise TokenError(f"{name} exited with {proc.returncode}" + (f": {first}" if first else ""))
        return out.decode(errors="replace").strip()


# --- starting a client, and why it could not start --------------------------------------


async def start(client: Any, target: KafkaTarget) -> None:
    """``client.start()``; a failure that a setting causes becomes a :class:`KafkaSetupError`.

    An OAUTHBEARER token is tried first by hand (see :func:`_oauth_refusal`).
    """
    if target.kafka_security.sasl_mechanism == "OAUTHBEARER":
        await _check_token(target)
    try:
        await client.start()
    except KafkaConnectionError as exc:
        cause = await diagnose(target)
        if cause is not None:
            raise cause from exc
        raise


async def _check_token(target: KafkaTarget) -> None:
    """Raise :class:`KafkaSetupError` if a broker refuses our OAUTHBEARER token (before aiokafka would hide it)."""
    security = target.kafka_security
    context = ssl_context(security) if security.tls else None
    for host, port, _ in collect_hosts(target.kafka_bootstrap, randomize=False):
        message = await _oauth_refusal(host, port, security, context)
        if message is not None:
            raise KafkaSetupError(message)


async def diagnose(target: KafkaTarget) -> KafkaSetupError | None:
    """Why the brokers refuse us, if a setting is the reason; None if they are merely unreachable."""
    options = client_options(target)
    for host, port, _ in collect_hosts(target.kafka_bootstrap, randomize=False):
        message = await _probe(host, port, options, target.kafka_security)
        if message is not None:
            return KafkaSetupError(message)
    return None


async def _probe(host: str, port: int, options: dict[str, Any], security: KafkaSecurity) -> str | None:
    where = f"{host}:{port}"
    if security.tls:
        message = await _tls_probe(host, port, options["ssl_context"], security)
        if message is not None:
            return message
    elif await _speaks_tls(host, port):
        return f"{_P}SECURITY_PROTOCOL={security.protocol}: {where} speaks TLS; use SSL or SASL_SSL"
    if security.sasl_mechanism == "OAUTHBEARER":
        return await _oauth_refusal(host, port, security, options.get("ssl_context"))
    if security.sasl:
        return await _sasl_probe(host, port, options, security)
    mechanisms = await _sasl_mechanisms(host, port)
    if mechanisms is not None:
        return (
            f"{_P}SECURITY_PROTOCOL={security.protocol}: {where} wants SASL ({', '.join(mechanisms)});"
            " set the protocol, mechanism and credentials"
        )
    return None


_CLIENT_ID: Final = b"runstream-probe"


def _request(api_key: int, version: int, body: bytes = b"") -> bytes:
    """One Kafka request, framed: size, api key, version, correlation id, client id, body."""
    message = struct.pack(">hhih", api_key, version, 1, len(_CLIENT_ID)) + _CLIENT_ID + body
    return struct.pack(">i", len(message)) + message


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> bytes:
    """Send a request, return its response without the size (the correlation id first)."""
    writer.write(request)
    await writer.drain()
    (size,) = struct.unpack(">i", await asyncio.wait_for(reader.readexactly(4), _PROBE_TIMEOUT_SECONDS))
    return await asyncio.wait_for(reader.readexactly(size), _PROBE_TIMEOUT_SECONDS)


def _string(value: bytes) -> bytes:
    return struct.pack(">h", len(value)) + value


# An ApiVersions v0 request: every listener answers it, before any SASL step.
_API_VERSIONS: Final = _request(18, 0)


async def _tls_probe(host: str, port: int, context: ssl.SSLContext, security: KafkaSecurity) -> str | None:
    """The TLS handshake alone, then one request: with TLS 1.3 the broker judges our certificate after it."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context, server_hostname=host), _PROBE_TIMEOUT_SECONDS
        )
    except ssl.SSLCertVerificationError as exc:
        return _untrusted_broker(host, port, exc, security)
    except ssl.SSLError as exc:
        return _refused_handshake(host, port, exc, security)
    except (OSError, TimeoutError):
        return None
    try:
        # Listen first: a refusal that comes as the broker closes could be lost
        # (reset) once we have sent a request it will never read.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader.read(1), _VERDICT_SECONDS)
        writer.write(_API_VERSIONS)
        await writer.drain()
        await asyncio.wait_for(reader.readexactly(4), _PROBE_TIMEOUT_SECONDS)
    except ssl.SSLError as exc:
        return _refused_handshake(host, port, exc, security)
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return None
    finally:
        writer.close()
    return None


_EXPIRED: Final = 10  # X509_V_ERR_CERT_HAS_EXPIRED
_NOT_YET_VALID: Final = 9
_HOSTNAME_MISMATCH: Final = 62


def _untrusted_broker(host: str, port: int, exc: ssl.SSLCertVerificationError, security: KafkaSecurity) -> str:
    where, reason = f"{host}:{port}", exc.verify_message
    trusted = f"{_P}SSL_CAFILE={security.ssl_cafile}" if security.ssl_cafile else f"{_P}SSL_CAFILE (unset: system CAs)"
    if exc.verify_code in (_EXPIRED, _NOT_YET_VALID):
        return f"{trusted}: the certificate of broker {where} is not valid now ({reason}); the broker must renew it"
    if exc.verify_code == _HOSTNAME_MISMATCH:
        return f"RUNSTREAM_KAFKA_BOOTSTRAP: the certificate of broker {where} is not for {host!r} ({reason})"
    return f"{trusted} does not vouch for the certificate of broker {where} ({reason})"


def _refused_handshake(host: str, port: int, exc: ssl.SSLError, security: KafkaSecurity) -> str:
    where, reason = f"{host}:{port}", str(exc.reason or exc)
    alert = "ALERT" in reason
    if security.ssl_certfile is None and (alert or "CERTIFICATE_REQUIRED" in reason):
        return f"broker {where} wants a client certificate (mTLS): set {_P}SSL_CERTFILE and {_P}SSL_KEYFILE ({reason})"
    if security.ssl_certfile is not None and alert:
        # The broker's alert rarely says why (Java answers "bad certificate"): check the dates ourselves.
        cert = f"{_P}SSL_CERTFILE={security.ssl_certfile}"
        return f"{cert}: broker {where} refused the client certificate{_validity(security.ssl_certfile)} ({reason})"
    return f"{_P}SECURITY_PROTOCOL={security.protocol}: the TLS handshake with {where} failed ({reason})"


def _validity(certfile: Path) -> str:
    """': it has expired (on <date>)' or ': it is not valid before <date>' for a certificate out of its dates."""
    try:
        decoded = _ssl._test_decode_cert(str(certfile))  # type: ignore[attr-defined]  # the stdlib's PEM parser
        not_before, not_after = (ssl.cert_time_to_seconds(decoded[k]) for k in ("notBefore", "notAfter"))
    except (OSError, ValueError, KeyError, ssl.SSLError):
        return ""
    now = time.time()
    if now > not_after:
        return f": it has expired (on {decoded['notAfter']})"
    if now < not_before:
        return f": it is not valid before {decoded['notBefore']}"
    return ""


async def _speaks_tls(host: str, port: int) -> bool:
    """Whether a TLS handshake succeeds (certificate unchecked: this only asks what the listener speaks)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=context), _PROBE_TIMEOUT_SECONDS)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


async def _sasl_mechanisms(host: str, port: int) -> list[str] | None:
    """The mechanisms a SASL listener offers; None from a listener without SASL (or none reached).

    A SaslHandshake v1 request: a SASL listener answers it with its
    mechanisms, a plain one with ILLEGAL_SASL_STATE.
    """
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), _PROBE_TIMEOUT_SECONDS)
    except (OSError, TimeoutError):
        return None
    try:
        response = await _exchange(reader, writer, _request(17, 1, _string(b"PLAIN")))
    except (OSError, TimeoutError, asyncio.IncompleteReadError, struct.error):
        return None
    finally:
        writer.close()
    return _mechanisms(response)


def _mechanisms(response: bytes) -> list[str] | None:
    try:
        _, error_code, count = struct.unpack_from(">ihi", response)
        if error_code not in (0, UnsupportedSaslMechanismError.errno):
            return None  # ILLEGAL_SASL_STATE: a listener without SASL
        names, offset = [], 10
        for _ in range(count):
            (length,) = struct.unpack_from(">h", response, offset)
            names.append(response[offset + 2 : offset + 2 + length].decode("utf-8", "replace"))
            offset += 2 + length
    except struct.error:
        return None
    return names


async def _sasl_probe(host: str, port: int, options: dict[str, Any], security: KafkaSecurity) -> str | None:
    where, user = f"{host}:{port}", security.sasl_username
    try:
        conn = await create_conn(
            host,
            port,
            request_timeout_ms=int(_PROBE_TIMEOUT_SECONDS * 1000),
            **{k: v for k, v in options.items() if k != "bootstrap_servers"},
        )
    except SaslAuthenticationFailed as exc:
        secret = "SASL_PASSWORD_FILE" if security.sasl_password_file else "SASL_PASSWORD"
        return (
            f"{_P}SASL_USERNAME={user} / {_P}{secret}: broker {where} refused the credentials"
            f" ({security.sasl_mechanism}): {_first_line(exc)}"
        )
    except UnsupportedSaslMechanismError:
        return f"{_P}SASL_MECHANISM={security.sasl_mechanism}: broker {where} does not offer it"
    except IllegalSaslStateError:
        return f"{_P}SECURITY_PROTOCOL={security.protocol}: broker {where} has no SASL on this listener"
    except (OSError, KafkaError, TimeoutError):
        return None
    conn.close()
    return None


async def _oauth_refusal(host: str, port: int, security: KafkaSecurity, context: ssl.SSLContext | None) -> str | None:
    """Why the broker refuses our OAUTHBEARER token, by hand; None if it takes it (or cannot be reached).

    aiokafka does not read the broker's verdict on a token (RFC 7628 sends it
    as a challenge, not an error), so a refused token would look like a
    successful login followed by requests that fail for ever.
    """
    try:
        token = await TokenProvider(security).token()
    except TokenError as exc:
        return str(exc.args[0])  # without aiokafka's "TokenError: " prefix
    where = f"{host}:{port}"
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context, server_hostname=host if context else None),
            _PROBE_TIMEOUT_SECONDS,
        )
    except (OSError, TimeoutError):
        return None
    try:
        await _exchange(reader, writer, _request(17, 1, _string(b"OAUTHBEARER")))
        payload = f"n,,\x01auth=Bearer {token}\x01\x01".encode()
        response = await _exchange(reader, writer, _request(36, 0, struct.pack(">i", len(payload)) + payload))
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return None
    finally:
        writer.close()
    verdict = _oauth_verdict(response)
    source = f"{_P}OAUTH_TOKEN_FILE" if security.oauth_token_file else f"{_P}OAUTH_TOKEN_COMMAND"
    return None if verdict is None else f"{source}: broker {where} refused the OAUTHBEARER token ({verdict})"


def _oauth_verdict(response: bytes) -> str | None:
    """The error in a SaslAuthenticate v0 response: an error code, or the JSON challenge of RFC 7628."""
    try:
        _, error_code, length = struct.unpack_from(">ihh", response)
        offset = 8 + max(length, 0)
        message = response[8:offset].decode("utf-8", "replace") if length > 0 else ""
        (size,) = struct.unpack_from(">i", response, offset)
        challenge = response[offset + 4 : offset + 4 + max(size, 0)]
    except struct.error:
        return None
    if error_code != 0:
        return message or f"error {error_code}"
    if challenge.startswith(b"{"):
        return challenge.decode("utf-8", "replace")
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- topics -------------------------------------------------------------------------------------


async def ensure_topics(settings: Settings, topics: Mapping[str, int] | None = None) -> None:
    """Make the topics in ``{name: partitions}`` (default: events and dead letters) unless they exist.

    Each gets ``settings.topic_replication_factor`` replicas (default
    ``min(3, brokers)``), ``min.insync.replicas`` from the settings (default
    one less than the replicas, within 1..2) and our ``max.message.bytes``.
    Existing topics are never altered. With ``settings.create_topics`` off,
    only their existence is checked. Several callers may race: a topic
    another one created in between is as good as our own.
    """
    if topics is None:
        topics = {settings.topic: settings.topic_partitions, settings.dlq_topic: settings.topic_partitions}
    admin = AIOKafkaAdminClient(**client_options(settings))
    try:
        await start(admin, settings)
        missing = {name: n for name, n in topics.items() if name not in set(await admin.list_topics())}
        if not missing:
            return
        if not settings.create_topics:
            raise KafkaSetupError(
                f"RUNSTREAM_CREATE_TOPICS=false, and {', '.join(sorted(missing))} does not exist on"
                f" {settings.kafka_bootstrap}: an administrator must create it (see docs/security.md)"
            )
        brokers = len((await admin.describe_cluster())["brokers"])
        replication = settings.topic_replication_factor or min(3, max(1, brokers))
        min_insync = settings.topic_min_insync_replicas or max(1, min(2, replication - 1))
        await _create(admin, missing, replication, min_insync)
        await _until_led(admin, missing)
    finally:
        await admin.close()


async def _until_led(admin: AIOKafkaAdminClient, topics: Mapping[str, int], timeout_seconds: float = 30.0) -> None:
    """Wait until every partition of ``topics`` has a leader in the metadata.

    A multi-broker cluster answers CreateTopics before every broker's metadata
    holds the topic: a describe or a produce just after can see no partitions.
    """
    deadline = asyncio.get_running_loop().time() + timeout_seconds
    while True:
        described = await admin.describe_topics(list(topics))
        led = {
            d["topic"]: sum(1 for p in d["partitions"] if p["leader"] >= 0) for d in described if d["error_code"] == 0
        }
        if all(led.get(name, 0) >= n for name, n in topics.items()):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise KafkaSetupError(f"topics {sorted(topics)} created but not led by a broker after {timeout_seconds} s")
        await asyncio.sleep(0.1)


async def _create(admin: AIOKafkaAdminClient, topics: Mapping[str, int], replication: int, min_insync: int) -> None:
    configs = {"max.message.bytes": str(TOPIC_MAX_MESSAGE_BYTES), "min.insync.replicas": str(min_insync)}
    try:
        response = await admin.create_topics(
            [NewTopic(name, n, replication, topic_configs=configs) for name, n in topics.items()]
        )
    except (TopicAuthorizationFailedError, ClusterAuthorizationFailedError) as exc:
        raise _not_allowed(exc) from exc
    for topic_error in response.topic_errors:
        name, code = topic_error[0], topic_error[1]
        if code == 0:
            log.info("created topic %s (%d replicas, min.insync.replicas=%d)", name, replication, min_insync)
            continue
        error: type[KafkaError] = for_code(code)
        detail = topic_error[2] if len(topic_error) > 2 else ""
        if error is TopicAlreadyExistsError:
            continue
        if error is InvalidReplicationFactorError:
            raise KafkaSetupError(f"RUNSTREAM_TOPIC_REPLICATION_FACTOR={replication}: creating topic {name}: {detail}")
        if error in (TopicAuthorizationFailedError, ClusterAuthorizationFailedError):
            raise _not_allowed(error(detail))
        raise error(f"creating topic {name}: {detail}")


def _not_allowed(exc: BaseException) -> KafkaSetupError:
    return KafkaSetupError(
        f"this Kafka user may not create topics ({_first_line(exc)}): have an administrator create them"
        " and set RUNSTREAM_CREATE_TOPICS=false"
    )
