"""Kafka stopped under a running worker: it reconnects and stores every point once.

The shared broker cannot be stopped, so this test starts a broker of its own
(the stack's code, its own ports and data directory), stops it while the
worker runs, and starts it again on the same data.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest_asyncio

from ingest import IngestOptions, IngestWorker
from runstream.config import Settings
from runstream.stack import free_port
from runstream.stack._kafka import KafkaBroker
from tests.support import eventually, wait_http_ok
from tests.test_ingest_support import Stream, produce_all

OUTAGE_SECONDS = 8.0


@pytest_asyncio.fixture
async def own_broker(settings: Settings, tmp_path: Path) -> AsyncIterator[tuple[KafkaBroker, Settings]]:
    # A broker of our own, as the stack makes one: its own SCRAM user, its secrets under its home.
    home = tmp_path / "home"
    local = Settings.from_env(
        {
            "RUNSTREAM_HOME": str(home),
            "RUNSTREAM_KAFKA_PORT": str(free_port()),
            "RUNSTREAM_KAFKA_CONTROLLER_PORT": str(free_port()),
        }
    )
    mine = dataclasses.replace(
        settings,
        home=home,
        kafka_port=local.kafka_port,
        kafka_controller_port=local.kafka_controller_port,
        kafka_bootstrap=local.kafka_bootstrap,
        kafka_security=local.kafka_security,
        topic="ingest-outage.events",
        dlq_topic="ingest-outage.dead-letter",
        group_id="ingest-outage",
        topic_partitions=2,
        ingest_metrics_port=free_port(),
    )
    kafka = KafkaBroker(mine)
    await asyncio.to_thread(kafka.start)
    try:
        yield kafka, mine
    finally:
        await asyncio.to_thread(kafka.stop)


async def test_kafka_restart_under_the_worker_loses_and_duplicates_nothing(
    own_broker: tuple[KafkaBroker, Settings], db: asyncpg.Pool
) -> None:
    kafka, mine = own_broker
    stream = Stream(runs=2, batches_per_run=20, points_per_batch=500)
    records = stream.records()
    async with IngestWorker(mine, options=IngestOptions(retry_max_seconds=1.0)) as worker:
        loop_ended = asyncio.create_task(worker.wait())
        await produce_all(mine, mine.topic, records[:20])
        await eventually(lambda: stream.stored(db), lambda n: n >= 20 * 500, what="first half stored")
        await asyncio.to_thread(kafka.stop)
        await asyncio.sleep(OUTAGE_SECONDS)  # the outage itself, not a wait for a condition
        await wait_http_ok(f"http://127.0.0.1:{mine.ingest_metrics_port}/metrics")  # still serving
        await asyncio.to_thread(kafka.start)
        await produce_all(mine, mine.topic, records[20:])
        await eventually(lambda: stream.stored(db), lambda n: n >= stream.total, what="all points stored")
        assert not loop_ended.done()
        loop_ended.cancel()
    await stream.check_exactly_once(db)
