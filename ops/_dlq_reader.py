"""Reading the dead-letter topic back, for ``runstream dlq list``."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from runstream import kafka
from runstream.config import Settings

__all__ = ["DeadLetterRecord", "read_dead_letters"]


@dataclass(frozen=True)
class DeadLetterRecord:
    offset: int
    timestamp_ms: int
    headers: dict[str, str]
    size: int


async def read_dead_letters(settings: Settings, *, limit: int) -> list[DeadLetterRecord]:
    """The newest ``limit`` dead letters of the dead-letter topic, oldest first (no group, nothing committed)."""
    topic = settings.dlq_topic
    partitions = [TopicPartition(topic, p) for p in await _partitions(settings, topic)]
    if not partitions:
        return []
    consumer = AIOKafkaConsumer(**kafka.client_options(settings), enable_auto_commit=False)
    try:
        await kafka.start(consumer, settings)
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, max(0, ends[tp] - limit))
        records: list[DeadLetterRecord] = []
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, messages in batch.items():
                for msg in messages:
                    headers = {k: v.decode("utf-8", "replace") for k, v in msg.headers}
                    records.append(DeadLetterRecord(msg.offset, msg.timestamp, headers, len(msg.value or b"")))
                    if msg.offset + 1 >= ends[tp]:
                        remaining.discard(tp)
            if not batch:
                remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
        return sorted(records, key=lambda r: r.timestamp_ms)[-limit:]
    finally:
        await consumer.stop()


async def _partitions(settings: Settings, topic: str) -> list[int]:
    # A consumer outside a group only learns of the topics it is assigned, so ask the admin API.
    admin = AIOKafkaAdminClient(**kafka.client_options(settings))
    try:
        await kafka.start(admin, settings)
        if topic not in await admin.list_topics():
            return []
        (description,) = await admin.describe_topics([topic])
        return sorted(p["partition"] for p in description["partitions"])
    finally:
        await admin.close()
