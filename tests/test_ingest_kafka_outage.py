"""Kafka stopped under a running worker: it reconnects and stores every point once.

The shared broker cannot be stopped, so this test starts a broker of its own
(the stack's code, its own ports and data directory), stops it while the
worker runs, and starts it again on the same data.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest_asyncio

from ingest import IngestOptions, IngestWorker
from ops.stack._kafka import KafkaBroker
from runstream.config import Settings
from tests.support import eventually, wait_http_ok
from tests.test_ingest_support import Stream, private_broker, produce_all

OUTAGE_SECONDS = 8.0


@pytest_asyncio.fixture
async def own_broker(settings: Settings, tmp_path: Path) -> AsyncIterator[tuple[KafkaBroker, Settings]]:
    async with private_broker(settings, tmp_path / "home", "ingest-outage", partitions=2) as broker:
        yield broker


async def test_kafka_restart_under_the_worker_loses_and_duplicates_nothing(
    own_broker: tuple[KafkaBroker, Settings], db: asyncpg.Pool
) -> None:
    kafka, mine = own_broker
    stream = Stream(runs=2, batches_per_run=20, points_per_batch=500)
    records = stream.records()
    options = IngestOptions(retry_max_seconds=1.0, stall_seconds=2.0, topic_check_interval_seconds=0.5)
    async with IngestWorker(mine, options=options) as worker:
        loop_ended = asyncio.create_task(worker.wait())
        await produce_all(mine, mine.topic, records[:20])
        await eventually(lambda: stream.stored(db), lambda n: n >= 20 * 500, what="first half stored")
        await asyncio.to_thread(kafka.stop)
        await asyncio.sleep(OUTAGE_SECONDS)  # the outage itself, not a wait for a condition
        await wait_http_ok(f"http://127.0.0.1:{mine.ingest_metrics_port}/metrics")  # still serving
        reasons = worker.health().reasons  # and saying what is wrong
        assert any(reason.startswith("cannot reach Kafka for") for reason in reasons), reasons
        await asyncio.to_thread(kafka.start)
        await produce_all(mine, mine.topic, records[20:])
        await eventually(lambda: stream.stored(db), lambda n: n >= stream.total, what="all points stored")
        assert not loop_ended.done()
        await eventually(lambda: _ready(worker), lambda ok: ok, what="healthy once Kafka is back")
        loop_ended.cancel()
    await stream.check_exactly_once(db)


async def _ready(worker: IngestWorker) -> bool:
    return worker.health().ready
