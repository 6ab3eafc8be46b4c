"""Where the sender puts encoded records: Kafka, or a spool file for offline runs.

A sink is opened and closed on the sender's event loop. ``publish`` returns
once the record is durably accepted (Kafka: acknowledged by all in-sync
replicas; spool: written and flushed) and raises otherwise; the sender decides
whether to retry by asking :func:`is_fatal`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]
from aiokafka.errors import (  # type: ignore[import-untyped]
    ClusterAuthorizationFailedError,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    TopicAuthorizationFailedError,
)

from producer._spool import SpoolWriter
from runstream.events import MAX_RECORD_BYTES

# Errors that no retry can fix; anything else (timeouts, lost leaders, a
# broker that is down) is retried until the caller's deadline.
_FATAL = (MessageSizeTooLargeError, TopicAuthorizationFailedError, ClusterAuthorizationFailedError, InvalidTopicError)


def is_fatal(error: BaseException) -> bool:
    return isinstance(error, _FATAL)


def needs_reopen(error: BaseException) -> bool:
    """Errors after which an idempotent producer's state is suspect: start a new one."""
    return isinstance(error, KafkaError) and not error.retriable and not is_fatal(error)


class Sink(Protocol):
    async def open(self) -> None: ...

    async def publish(self, key: bytes, value: bytes) -> None: ...

    async def close(self) -> None: ...


class KafkaSink:
    """One idempotent aiokafka producer (acks=all) on the sender's loop."""

    def __init__(self, *, bootstrap: str, topic: str, compression: str | None, request_timeout_seconds: float) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._compression = compression
        self._request_timeout_ms = int(request_timeout_seconds * 1000)
        self._producer: AIOKafkaProducer | None = None

    async def open(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            enable_idempotence=True,
            acks="all",
            compression_type=self._compression,
            # Our own batching makes records of up to MAX_RECORD_BYTES; leave room for the headers.
            max_request_size=MAX_RECORD_BYTES + 64 * 1024,
            request_timeout_ms=self._request_timeout_ms,
            linger_ms=0,
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer

    async def publish(self, key: bytes, value: bytes) -> None:
        if self._producer is None:
            raise RuntimeError("KafkaSink.publish before open")
        await self._producer.send_and_wait(self._topic, value, key=key)

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()


class SpoolSink:
    """An offline run's records, appended to its session's spool file."""

    def __init__(self, path: Path) -> None:
        self._writer = SpoolWriter(path)

    @property
    def path(self) -> Path:
        return self._writer.path

    async def open(self) -> None:
        self._writer.open()

    async def publish(self, key: bytes, value: bytes) -> None:
        self._writer.append(value)

    async def close(self) -> None:
        self._writer.close()
