"""The broker's data replaced while PostgreSQL is kept (issue 13, item 3): every later point is stored.

A broker of this test's own (the stack's code, its own ports and data directory), because the test
wipes its data directory: a new cluster with an empty topic whose offsets start again at 0, below
the offsets PostgreSQL holds. Once while the worker runs; once while no worker runs and the new
topic gets more records than the stored offsets before one starts again (offsets alone cannot tell
that topic from the old one: the cluster and topic ids can). The sessions go on numbering their
batches across the change; the batches that went with the old broker are counted as lost, every
other one is stored exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from ingest import IngestOptions, IngestWorker
from ops.stack import create_topics
from ops.stack._kafka import KafkaBroker
from runstream.config import Settings
from tests.support import eventually
from tests.test_ingest_robustness import numbered, ready
from tests.test_ingest_support import new_id, points, private_broker, produce_all

RUNS = 3


@pytest_asyncio.fixture
async def wipeable_broker(settings: Settings, tmp_path: Path) -> AsyncIterator[tuple[KafkaBroker, Settings]]:
    async with private_broker(settings, tmp_path / "home", f"replaced-{new_id()[:8]}", partitions=2) as broker:
        yield broker


async def replace_data(kafka: KafkaBroker) -> None:
    """What a lost volume does: the broker comes back as a new, empty cluster."""
    await asyncio.to_thread(kafka.stop)
    shutil.rmtree(kafka.root / "data")
    await asyncio.to_thread(kafka.start)


async def test_a_broker_whose_data_is_replaced_loses_no_later_point(
    wipeable_broker: tuple[KafkaBroker, Settings], db: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    kafka, mine = wipeable_broker
    sessions = [(new_id(), new_id()) for _ in range(RUNS)]
    options = IngestOptions(topic_check_interval_seconds=0.5, retry_max_seconds=0.5)

    async def produce(seqs: range) -> None:
        await produce_all(mine, mine.topic, [(run, numbered(run, s, seq)) for run, s in sessions for seq in seqs])

    async def stored() -> list[list[int]]:
        return [[p[0] for p in await points(db, run, "x")] for run, _ in sessions]

    caplog.set_level(logging.WARNING, logger="ingest")
    async with IngestWorker(mine, options=options) as worker:
        await produce(range(1, 11))
        await eventually(stored, lambda got: got == [list(range(1, 11))] * RUNS, what="the first 10 batches")
        await replace_data(kafka)
        # The worker creates the topic again (as it does at start) and finds it is a new one.
        await eventually(lambda: _kinds(db, mine.topic), lambda kinds: kinds == ["new_topic"], timeout_seconds=90)
        await produce(range(11, 31))
        await eventually(stored, lambda got: got == [list(range(1, 31))] * RUNS, what="every later batch")
        registry = worker.metrics.registry
        assert registry.get_sample_value("runstream_ingest_topic_changes_total", {"kind": "new_topic"}) == 1
        assert registry.get_sample_value("runstream_ingest_lost_batches_total") == 0  # the old topic was drained
        notices = (await ready(mine))[1]["notices"]
        assert any("new_topic" in notice and "another cluster" in notice for notice in notices)
    assert any("new_topic" in r.getMessage() and "another cluster" in r.getMessage() for r in caplog.records)

    # No worker now. Three more batches per session go to the broker, which loses them with its data;
    # the new topic then holds more records than PostgreSQL's offsets before a worker starts.
    await produce(range(31, 34))
    await replace_data(kafka)
    await create_topics(mine)  # as `runstream up` does
    await produce(range(34, 81))
    async with IngestWorker(mine, options=options) as worker:
        expected = list(range(1, 31)) + list(range(34, 81))
        await eventually(stored, lambda got: got == [expected] * RUNS, what="the new topic from its start")
        assert worker.metrics.registry.get_sample_value("runstream_ingest_lost_batches_total") == 3 * RUNS
    assert await _kinds(db, mine.topic) == ["new_topic", "new_topic"]
    assert await db.fetchval("SELECT epoch FROM topic_incarnations WHERE topic = $1", mine.topic) == 3
    assert all(count == 77 for count in await _point_counts(db, sessions))


async def _kinds(db: asyncpg.Pool, topic: str) -> list[str]:
    return [r["kind"] for r in await db.fetch("SELECT kind FROM topic_changes WHERE topic = $1 ORDER BY id", topic)]


async def _point_counts(db: asyncpg.Pool, sessions: list[tuple[str, str]]) -> list[int]:
    """The series summaries (what run listings show) agree: each batch counted once."""
    return [
        await db.fetchval("SELECT point_count FROM series WHERE run_id = $1 AND name = 'x'", run) for run, _ in sessions
    ]
