"""The dead-letter topic: original bytes plus where they came from and why.

Each dead letter is produced with the source record's key and value untouched
and these headers (UTF-8): ``source_topic``, ``source_partition``,
``source_offset``, ``reason`` (a short code such as ``not_json`` or
``unknown_run``), ``message`` (a human-readable explanation) and, when an
exception made the record a dead letter, ``exception`` (its type). A record
too large for the dead-letter topic keeps its first 64 KiB and gets a
``truncated_from_bytes`` header.

A dead-letter topic that is deleted, refuses writes or does not answer within
``timeout_seconds`` (plus a second per 10 MB sent) must not stall the partitions whose records it should
take: :class:`DeadLetters` then keeps the letters in PostgreSQL
(``dead_letters``, in the transaction that stores their offsets, so none is
lost or doubled there), says so (``writable`` false; the worker reports it as
unhealthy) and produces them to the topic later (:meth:`DeadLetters.redeliver`,
which first creates the topic if it is missing), deleting each once Kafka has it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError

from runstream import kafka
from runstream.pg import Conn

from ._decoder import DeadLetter

__all__ = ["DeadLetterProducer", "DeadLetters", "dead_letter_headers"]

log = logging.getLogger(__name__)

_MAX_MESSAGE_CHARS: Final = 2000
_TRUNCATED_BYTES: Final = 64 * 1024
_TOO_LARGE: Final = (MessageSizeTooLargeError, RecordTooLargeError)
#: Held letters produced per redelivery round (one transaction each).
_REDELIVER_BATCH: Final = 500


def dead_letter_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    """The headers that say where a dead letter came from and why."""
    source = letter.source
    headers = [
        ("source_topic", source.topic.encode()),
        ("source_partition", str(source.partition).encode()),
        ("source_offset", str(source.offset).encode()),
        ("reason", letter.reason.encode()),
        ("message", letter.message[:_MAX_MESSAGE_CHARS].encode("utf-8", "replace")),
    ]
    if letter.exception is not None:
        headers.append(("exception", letter.exception.encode()))
    return headers


class DeadLetterProducer:
    """Sends dead letters and waits until Kafka has them (acks=all)."""

    def __init__(self, target: kafka.KafkaTarget, *, topic: str) -> None:
        self._topic = topic
        self._target = target
        self._max_bytes = kafka.TOPIC_MAX_MESSAGE_BYTES
        self._producer = AIOKafkaProducer(
            **kafka.client_options(target),
            acks="all",
            enable_idempotence=True,
            max_request_size=self._max_bytes + 64 * 1024,
        )
        self._started = False

    async def start(self) -> None:
        await kafka.start(self._producer, self._target)
        self._started = True

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self._producer.stop()

    async def __call__(self, letters: Sequence[DeadLetter]) -> None:
        """Send ``letters``; returns once every one is acknowledged."""
        await self.send_raw([(lt.source.key, lt.source.value, dead_letter_headers(lt)) for lt in letters])

    async def send_raw(self, records: Sequence[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]) -> None:
        """Send (key, value, headers) records; returns once every one is acknowledged."""
        futures = [await self._send(*record) for record in records]
        results = await asyncio.gather(*futures, return_exceptions=True)
        for record, result in zip(records, results, strict=True):
            if isinstance(result, _TOO_LARGE):
                await (await self._send(*record, truncate=True))
            elif isinstance(result, BaseException):
                raise result

    async def _send(
        self, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]], *, truncate: bool = False
    ) -> asyncio.Future[Any]:
        if value is not None and (truncate or len(value) > self._max_bytes):
            # Keep the head of the record: enough to see what it was. A dead
            # letter must never block the partition it came from.
            headers = [*headers, ("truncated_from_bytes", str(len(value)).encode())]
            value = value[:_TRUNCATED_BYTES]
        future: asyncio.Future[Any] = await self._producer.send(self._topic, value=value, key=key, headers=headers)
        return future


Raw = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]


class DeadLetters:
    """Where the writer sends dead letters: the topic, or PostgreSQL while the topic cannot take them.

    ``send`` is a coroutine function taking (key, value, headers) records (a
    :meth:`DeadLetterProducer.send_raw`); ``ensure_topic`` creates the
    dead-letter topic if it is missing.
    """

    def __init__(
        self,
        send: Callable[[Sequence[Raw]], Awaitable[None]],
        *,
        ensure_topic: Callable[[], Awaitable[None]],
        topic: str,
        timeout_seconds: float,
    ) -> None:
        self._send = send
        self._ensure_topic = ensure_topic
        self.topic = topic
        self._timeout = timeout_seconds
        self.writable = True
        self.failing_since: float | None = None  # wall clock
        self.last_error: str | None = None
        self.held = 0  # letters waiting in PostgreSQL, as of the last count

    async def __call__(self, letters: Sequence[DeadLetter], conn: Conn) -> None:
        """Deliver ``letters`` before the caller's transaction commits: to the topic, else into ``conn``."""
        records = [(letter.source.key, letter.source.value, dead_letter_headers(letter)) for letter in letters]
        if self.writable and await self._try_send(records):
            return
        await conn.executemany(
            "INSERT INTO dead_letters (topic, key, value, header_names, header_values) VALUES ($1, $2, $3, $4, $5)",
            [(self.topic, key, value, [n for n, _ in h], [v for _, v in h]) for key, value, h in records],
        )
        self.held += len(records)

    async def _try_send(self, records: Sequence[Raw]) -> bool:
        # A second more per 10 MB: a burst of large dead letters is slow, not a topic that refuses them.
        allowance = self._timeout + sum(len(value or b"") for _, value, _ in records) / 10e6
        try:
            await asyncio.wait_for(self._send(records), allowance)
        except (KafkaError, OSError, TimeoutError) as exc:
            self._failed(exc)
            return False
        return True

    def _failed(self, exc: BaseException) -> None:
        if self.writable:
            log.error(
                "the dead-letter topic %s cannot take dead letters (%r): keeping them in PostgreSQL"
                " (table dead_letters) until it can",
                self.topic,
                exc,
            )
        self.writable = False
        self.failing_since = self.failing_since or time.time()
        self.last_error = repr(exc)

    async def redeliver(self, pool: asyncpg.Pool) -> None:
        """Produce the letters held in PostgreSQL to the topic, oldest first; delete each once Kafka has it."""
        while True:
            async with pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(
                    "SELECT id, key, value, header_names, header_values FROM dead_letters"
                    " WHERE topic = $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
                    self.topic,
                    _REDELIVER_BATCH,
                )
                if not rows:
                    self._recovered()
                    self.held = 0
                    return
                if not self.writable:
                    try:
                        await asyncio.wait_for(self._ensure_topic(), self._timeout)
                    except (KafkaError, OSError, TimeoutError) as exc:
                        self._failed(exc)
                        self.held = await self._count(conn)
                        return
                records = [
                    (r["key"], r["value"], list(zip(r["header_names"], r["header_values"], strict=True))) for r in rows
                ]
                if not await self._try_send(records):
                    self.held = await self._count(conn)
                    return
                await conn.execute("DELETE FROM dead_letters WHERE id = ANY($1::bigint[])", [r["id"] for r in rows])
            self._recovered()

    def _recovered(self) -> None:
        if not self.writable:
            log.info("the dead-letter topic %s takes dead letters again", self.topic)
        self.writable, self.failing_since, self.last_error = True, None, None

    async def _count(self, conn: Conn) -> int:
        return int(await conn.fetchval("SELECT count(*) FROM dead_letters WHERE topic = $1", self.topic))
