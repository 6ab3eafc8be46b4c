"""The dead-letter topic: original bytes plus where they came from and why.

Each dead letter is produced with the source record's key and value untouched
and these headers (UTF-8): ``source_topic``, ``source_partition``,
``source_offset``, ``reason`` (a short code such as ``not_json`` or
``unknown_run``) and ``message`` (a human-readable explanation). A record too
large for the dead-letter topic keeps its first 64 KiB and gets a
``truncated_from_bytes`` header.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Final

from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]
from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError  # type: ignore[import-untyped]

from runstream import kafka

from ._decoder import DeadLetter

__all__ = ["DeadLetterProducer", "dead_letter_headers"]

_MAX_MESSAGE_CHARS: Final = 2000
_TRUNCATED_BYTES: Final = 64 * 1024
_TOO_LARGE: Final = (MessageSizeTooLargeError, RecordTooLargeError)


def dead_letter_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    """The headers that say where a dead letter came from and why."""
    source = letter.source
    return [
        ("source_topic", source.topic.encode()),
        ("source_partition", str(source.partition).encode()),
        ("source_offset", str(source.offset).encode()),
        ("reason", letter.reason.encode()),
        ("message", letter.message[:_MAX_MESSAGE_CHARS].encode("utf-8", "replace")),
    ]


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
        futures = [await self._send(letter) for letter in letters]
        results = await asyncio.gather(*futures, return_exceptions=True)
        for letter, result in zip(letters, results, strict=True):
            if isinstance(result, _TOO_LARGE):
                await (await self._send(letter, truncate=True))
            elif isinstance(result, BaseException):
                raise result

    async def _send(self, letter: DeadLetter, *, truncate: bool = False) -> asyncio.Future[Any]:
        headers = dead_letter_headers(letter)
        value = letter.source.value
        if value is not None and (truncate or len(value) > self._max_bytes):
            # Keep the head of the record: enough to see what it was. A dead
            # letter must never block the partition it came from.
            headers.append(("truncated_from_bytes", str(len(value)).encode()))
            value = value[:_TRUNCATED_BYTES]
        future: asyncio.Future[Any] = await self._producer.send(
            self._topic, value=value, key=letter.source.key, headers=headers
        )
        return future
