"""Where the sender puts encoded records: Kafka, or a spool file for offline runs.

A sink is opened and closed on the sender's event loop; every Kafka sink of a
process (one per session) shares one producer per cluster. ``publish`` returns
once the record is durably accepted (Kafka: acknowledged by all in-sync
replicas; spool: written and flushed) and raises otherwise; the sender decides
whether to retry by asking :func:`is_fatal`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    TopicAuthorizationFailedError,
)

from producer._spool import SpoolWriter
from runstream import kafka
from runstream.config import ConfigError
from runstream.events import MAX_RECORD_BYTES

# Errors that no retry can fix; anything else (timeouts, lost leaders, a
# broker that is down) is retried until the caller's deadline. ConfigError: a
# setting Kafka refuses (a password, a CA, a certificate; runstream.kafka.start
# tells those from an unreachable broker) or a secret file that cannot be read.
_FATAL = (
    MessageSizeTooLargeError,
    TopicAuthorizationFailedError,
    ClusterAuthorizationFailedError,
    InvalidTopicError,
    ConfigError,
)


def is_fatal(error: BaseException) -> bool:
    return isinstance(error, _FATAL)


def needs_reopen(error: BaseException) -> bool:
    """Errors after which an idempotent producer's state is suspect: start a new one."""
    return isinstance(error, KafkaError) and not error.retriable and not is_fatal(error)


class Sink(Protocol):
    async def open(self) -> None: ...

    async def publish(self, key: bytes, value: bytes, timeout_seconds: float | None = None) -> None: ...

    async def reset(self) -> None:
        """Drop connection state that an error made suspect; the next publish starts afresh."""

    async def close(self) -> None: ...


class SharedProducer:
    """One idempotent aiokafka producer (acks=all) shared by every session of a process.

    Sessions hold it between ``acquire`` and ``release``: it is started by the
    first and stopped when the last lets go, so an idle process keeps no
    connection. ``restart(generation)`` replaces it after an error that makes
    its idempotence state suspect; sessions that saw the same error ask with
    the same generation and cause one restart between them. It lives on the
    loop of :mod:`producer._loop` (or of ``sync_spool``'s thread).
    """

    def __init__(self, target: kafka.KafkaTarget, *, compression: str | None, request_timeout_seconds: float) -> None:
        self._target = target
        self._compression = compression
        self.timeout = request_timeout_seconds
        self._producer: AIOKafkaProducer | None = None
        self._users = 0
        self.generation = 0
        self._lock: asyncio.Lock | None = None  # made on the loop that uses it

    def acquire(self) -> None:
        self._users += 1

    async def release(self) -> None:
        self._users -= 1
        if self._users == 0:
            await self.restart(self.generation)

    async def get(self) -> tuple[AIOKafkaProducer, int]:
        """The running producer (started if need be) and its generation."""
        async with self._locked():
            if self._producer is None:
                self._producer = await _start(self._target, self._compression, self.timeout)
            return self._producer, self.generation

    async def restart(self, generation: int) -> None:
        """Stop the producer of ``generation``, if it is still the current one."""
        async with self._locked():
            if generation != self.generation:
                return
            producer, self._producer = self._producer, None
            self.generation += 1
            if producer is not None:
                await _stop(producer, self.timeout)

    def _locked(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock


class KafkaSink:
    """One session's view of a :class:`SharedProducer`: the topic and its record in flight.

    An idempotent aiokafka producer never gives up on a record that hit a
    retriable error (a broker that is down): it retries until the broker
    answers. ``publish`` therefore waits at most ``request_timeout_seconds``
    and raises :class:`PublishTimeoutError`, leaving the record in flight. A
    second ``publish`` of equal bytes waits on that same send rather than
    queueing a copy; if the sender spools the record instead, the in-flight
    copy may still land later, before anything sent after it - a duplicate
    of the same seq, which ingest drops.
    """

    def __init__(self, producer: SharedProducer, topic: str) -> None:
        self._shared = producer
        self._topic = topic
        self._open = False
        self._generation = -1  # of the producer the last publish used
        self._in_flight: tuple[bytes, asyncio.Future[object]] | None = None

    async def open(self) -> None:
        if not self._open:
            self._shared.acquire()
            self._open = True

    async def publish(self, key: bytes, value: bytes, timeout_seconds: float | None = None) -> None:
        if not self._open:
            raise RuntimeError("KafkaSink.publish before open")
        timeout = self._shared.timeout if timeout_seconds is None else timeout_seconds
        in_flight = self._in_flight
        if in_flight is not None and not in_flight[1].done() and in_flight[0] == value:
            future = in_flight[1]
        else:
            producer, self._generation = await self._shared.get()
            future = await producer.send(self._topic, value, key=key)
            future.add_done_callback(_retrieve)
            self._in_flight = (value, future)
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            raise PublishTimeoutError(f"no acknowledgement within {timeout}s") from None
        self._in_flight = None

    async def reset(self) -> None:
        self._in_flight = None
        await self._shared.restart(self._generation)

    async def close(self) -> None:
        self._in_flight = None
        if self._open:
            self._open = False
            await self._shared.release()


class PublishTimeoutError(Exception):
    """Kafka did not acknowledge a record in time; it may still be delivered."""


def _retrieve(future: asyncio.Future[object]) -> None:
    # An abandoned send's outcome is not needed; fetching it keeps asyncio from logging it.
    if not future.cancelled():
        future.exception()


async def _start(target: kafka.KafkaTarget, compression: str | None, timeout_seconds: float) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(
        **kafka.client_options(target),
        enable_idempotence=True,
        acks="all",
        compression_type=compression,
        # Our own batching makes records of up to MAX_RECORD_BYTES; leave room for the headers.
        max_request_size=MAX_RECORD_BYTES + 64 * 1024,
        request_timeout_ms=int(timeout_seconds * 1000),
        linger_ms=0,
    )
    try:
        await kafka.start(producer, target)
    except BaseException:
        await _stop(producer, timeout_seconds)
        raise
    return producer


async def _stop(producer: AIOKafkaProducer, timeout_seconds: float) -> None:
    # stop() waits for records in flight, which an idempotent producer retries forever
    # while the broker is away: give up after a while; they are spooled or reported.
    try:
        await asyncio.wait_for(producer.stop(), timeout_seconds)
    except TimeoutError:
        pass


class SpoolSink:
    """An offline run's records, appended to its session's spool file."""

    def __init__(self, path: Path) -> None:
        self._writer = SpoolWriter(path)

    @property
    def path(self) -> Path:
        return self._writer.path

    async def open(self) -> None:
        self._writer.open()

    async def publish(self, key: bytes, value: bytes, timeout_seconds: float | None = None) -> None:
        self._writer.append(value)

    async def reset(self) -> None:
        pass  # a file has no connection state

    async def close(self) -> None:
        self._writer.close()
