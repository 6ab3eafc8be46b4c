"""Crashes, shutdowns and rebalances: every point stored exactly once."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
from collections.abc import Callable
from typing import Any

import aiohttp
import asyncpg

from ops.stack import free_port
from runstream.config import Settings
from tests.support import eventually, wait_http_ok
from tests.test_ingest_support import Stream, produce_all


def private(settings: Settings, name: str) -> Settings:
    """The session's settings with a topic and group of this test's own."""
    return dataclasses.replace(
        settings,
        topic=f"{settings.topic}.{name}",
        dlq_topic=f"{settings.dlq_topic}.{name}",
        group_id=f"{settings.group_id}.{name}",
        ingest_metrics_port=free_port(),
    )


async def start_worker(spawn: Callable[..., subprocess.Popen[bytes]], settings: Settings) -> subprocess.Popen[bytes]:
    proc = spawn("ingest", settings)
    await wait_http_ok(f"http://127.0.0.1:{settings.ingest_metrics_port}/metrics", proc)
    return proc


async def assigned_partitions(settings: Settings) -> float:
    url = f"http://127.0.0.1:{settings.ingest_metrics_port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        text = await resp.text()
    [line] = [line for line in text.splitlines() if line.startswith("runstream_ingest_assigned_partitions ")]
    return float(line.split()[1])


async def test_sigkill_mid_stream_then_restart_stores_every_point_once(
    settings: Settings, db: asyncpg.Pool, spawn: Any
) -> None:
    mine = private(settings, "kill")
    stream = Stream(runs=4, batches_per_run=100, points_per_batch=2500)  # 1,000,000 points
    proc = await start_worker(spawn, mine)
    records = stream.records()
    rounds = 6
    size = -(-len(records) // rounds)
    for k in range(rounds):
        # Produce a slice, then kill the worker as soon as it has stored part of it.
        before = await stream.stored(db)
        await produce_all(mine, mine.topic, records[k * size : (k + 1) * size])
        if k == rounds - 1:
            break
        await eventually(lambda: stream.stored(db), lambda n, b=before: n > b, interval_seconds=0.01, what="progress")
        proc.kill()
        proc.wait()
        proc = await start_worker(spawn, mine)
    await eventually(lambda: stream.stored(db), lambda n: n >= stream.total, what="all points stored")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    await stream.check_exactly_once(db)


async def test_sigterm_finishes_the_batch_in_hand_and_exits_0(settings: Settings, db: asyncpg.Pool, spawn: Any) -> None:
    mine = private(settings, "term")
    stream = Stream(runs=2, batches_per_run=50, points_per_batch=2000)
    proc = await start_worker(spawn, mine)
    await produce_all(mine, mine.topic, stream.records())
    await eventually(lambda: stream.stored(db), lambda n: n > 0, interval_seconds=0.02, what="first points")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    # Whatever was stored was stored whole: the offsets match the data.
    stored_offsets = await db.fetchval(
        "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE topic = $1", mine.topic
    )
    assert await stream.stored(db) == stored_offsets * stream.points_per_batch
    proc = await start_worker(spawn, mine)
    await eventually(lambda: stream.stored(db), lambda n: n >= stream.total, what="all points stored")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    await stream.check_exactly_once(db)


async def test_two_workers_one_killed_the_other_takes_over(settings: Settings, db: asyncpg.Pool, spawn: Any) -> None:
    mine = private(settings, "pair")
    other = dataclasses.replace(mine, ingest_metrics_port=free_port())
    stream = Stream(runs=8, batches_per_run=50, points_per_batch=1000)
    records = stream.records()
    first = await start_worker(spawn, mine)
    second = await start_worker(spawn, other)

    async def shares() -> list[float]:
        return [await assigned_partitions(s) for s in (mine, other)]

    await eventually(shares, lambda got: sum(got) == 4 and min(got) >= 1, what="both workers own partitions")
    await produce_all(mine, mine.topic, records[: len(records) // 2])
    await eventually(lambda: stream.stored(db), lambda n: n > 0, interval_seconds=0.01, what="progress")
    first.kill()
    first.wait()
    await produce_all(mine, mine.topic, records[len(records) // 2 :])
    await eventually(lambda: stream.stored(db), lambda n: n >= stream.total, what="all points stored")
    assert second.poll() is None
    assert await assigned_partitions(other) == 4
    await stream.check_exactly_once(db)
