"""Read the events topic directly and count each run's points, exactly as ingest stores them.

::

    python examples/kafka_consumer.py                 # every run on the topic
    python examples/kafka_consumer.py --run RUN_ID    # one run

It reads the topic from the beginning up to its end at start (no consumer
group: nothing is committed), decodes each record with the supported API in
:mod:`runstream.contract`, drops resent copies with a ``Deduplicator``, and
prints the points per run and metric. Connection settings come from the
``RUNSTREAM_*`` environment (``RUNSTREAM_KAFKA_BOOTSTRAP``, TLS and SASL),
as for every other runstream component. See docs/events.md.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from runstream.config import Settings
from runstream.contract import Deduplicator, EventError, decode_batch
from runstream.kafka import client_options, start


@dataclass
class Tally:
    """Points per (run, metric) of the distinct batches, and what was skipped."""

    points: Counter[tuple[str, str]] = field(default_factory=Counter)
    records: int = 0
    duplicates: int = 0
    invalid: int = 0


async def records(settings: Settings) -> AsyncIterator[ConsumerRecord]:
    """Every record on ``settings.topic`` up to its end when called, partition by partition in offset order."""
    partitions = await topic_partitions(settings)
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False, group_id=None)
    await start(consumer, settings)
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        pending = {tp for tp, offset in end.items() if offset > 0}
        while pending:
            for tp, batch in (await consumer.getmany(*pending, timeout_ms=1000)).items():
                for record in batch:
                    if record.offset < end[tp]:
                        yield record
                if await consumer.position(tp) >= end[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()


async def topic_partitions(settings: Settings) -> list[TopicPartition]:
    """The events topic's partitions (a consumer outside a group learns of no topic by itself: ask the admin API)."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await start(admin, settings)
    try:
        (description,) = await admin.describe_topics([settings.topic])
    finally:
        await admin.close()
    if description["error_code"]:
        raise RuntimeError(f"cannot read topic {settings.topic!r} (RUNSTREAM_TOPIC): error {description['error_code']}")
    return [TopicPartition(settings.topic, p["partition"]) for p in description["partitions"]]


async def count_points(settings: Settings, *, run_id: str | None = None) -> Tally:
    """Count the points of every batch on ``settings.topic`` (of ``run_id`` only, if given), once each."""
    tally, dedupe = Tally(), Deduplicator()
    async for record in records(settings):
        if run_id is None or record.key == run_id.encode():
            _count(record.value, tally, dedupe)
    tally.duplicates = dedupe.duplicates
    return tally


def _count(value: bytes | None, tally: Tally, dedupe: Deduplicator) -> None:
    tally.records += 1
    try:
        batch = decode_batch(value)
    except EventError as exc:
        tally.invalid += 1  # ingest dead-letters it; an invalid batch still uses up its seq
        if exc.header is not None:
            dedupe.accept(exc.header)
        return
    if not dedupe.accept(batch):
        return
    for event in batch.events:
        if event["type"] == "scalars":
            tally.points[(batch.run_id, event["name"])] += len(event["values"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="count this run's points only")
    args = parser.parse_args()
    tally = asyncio.run(count_points(Settings.from_env(), run_id=args.run))
    for (run, metric), n in sorted(tally.points.items()):
        print(f"{run}  {metric:<30} {n:>10}")
    print(f"{tally.records} record(s), {tally.duplicates} resent cop(ies) dropped, {tally.invalid} invalid")


if __name__ == "__main__":
    main()
