"""The worker in-process: its public surface, metrics, and a real PostgreSQL outage."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import socket
import struct
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

import ingest
from ingest import IngestConfigError, IngestOptions, IngestStartError, IngestStateError, IngestWorker
from ops.stack import free_port
from runstream.chunks import decode_row
from runstream.config import ConfigError, Settings
from runstream.dsn import with_database
from runstream.kafka import client_options
from runstream.schema import migrate
from tests.conftest import Services
from tests.support import eventually
from tests.test_ingest_recovery import private
from tests.test_ingest_support import (
    T0,
    Stream,
    TcpProxy,
    dead_letters,
    new_id,
    produce_all,
    raw,
    scalars,
    started,
)


def test_public_names_are_pinned() -> None:
    assert sorted(ingest.__all__) == [
        "DroppedRuns",
        "IngestConfigError",
        "IngestError",
        "IngestOptions",
        "IngestStartError",
        "IngestStateError",
        "IngestWorker",
        "PackedChunks",
        "UnknownExperimentError",
        "drop_experiment",
        "drop_expired_runs",
        "pack_raw_chunks",
        "run_worker",
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"flush_max_points": 0},
        {"flush_interval_seconds": -1.0},
        {"retry_initial_seconds": 2.0, "retry_max_seconds": 1.0},
    ],
)
def test_options_are_validated(bad: dict[str, float]) -> None:
    with pytest.raises(IngestConfigError) as info:
        IngestOptions(**bad)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    assert next(iter(bad)) in str(info.value)


def test_the_tuning_an_operator_sets_reaches_the_worker(tmp_path: Path) -> None:
    env = {
        "RUNSTREAM_HOME": str(tmp_path),
        "RUNSTREAM_INGEST_FLUSH_SECONDS": "0.2",
        "RUNSTREAM_INGEST_FLUSH_POINTS": "1000",
        "RUNSTREAM_LIVENESS_SWEEP_SECONDS": "0",
    }
    settings = Settings.from_env(env)
    assert Settings.from_env(settings.as_env()) == settings  # what `runstream ingest --workers N` passes on
    options = IngestWorker(settings).options
    assert options.flush_interval_seconds == 0.2
    assert options.flush_max_points == 1000
    assert options.liveness_interval_seconds == 0
    assert options == IngestOptions.from_settings(settings)
    assert IngestOptions.from_settings(settings, flush_max_points=7).flush_max_points == 7
    assert IngestOptions.from_settings(Settings.from_env({"RUNSTREAM_HOME": str(tmp_path)})) == IngestOptions()


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("RUNSTREAM_INGEST_FLUSH_SECONDS", "0", "must be a positive number of seconds"),
        ("RUNSTREAM_INGEST_FLUSH_SECONDS", "soon", "is not a number of seconds"),
        ("RUNSTREAM_INGEST_FLUSH_POINTS", "0", "must be at least 1"),
        ("RUNSTREAM_INGEST_FLUSH_POINTS", "1e6", "is not an integer"),
        ("RUNSTREAM_LIVENESS_SWEEP_SECONDS", "-1", "must be zero or a positive number of seconds"),
        ("RUNSTREAM_LIVENESS_SWEEP_SECONDS", "inf", "must be zero or a positive number of seconds"),
    ],
)
def test_bad_tuning_is_refused_by_name(name: str, raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"{name}=.*{message}"):
        Settings.from_env({name: raw})


async def test_metrics_count_what_was_written_and_lifecycle_is_strict(settings: Settings, db: asyncpg.Pool) -> None:
    mine = private(settings, "metrics")
    stream = Stream(runs=2, batches_per_run=5, points_per_batch=100)
    worker = IngestWorker(mine)
    async with worker:
        await produce_all(mine, mine.topic, stream.records() + [(stream.runs[0], b"garbage")])
        await eventually(lambda: stream.stored(db), lambda n: n >= stream.total, what="all points stored")

        async def scrape() -> dict[str, float]:
            url = f"http://127.0.0.1:{mine.ingest_metrics_port}/metrics"
            async with aiohttp.ClientSession() as session, session.get(url) as resp:
                assert resp.status == 200
                text = await resp.text()
            return {
                line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line and not line.startswith("#")
            }

        metrics = await eventually(
            scrape, lambda m: m.get('runstream_ingest_dead_lettered_records_total{reason="not_json"}') == 1.0
        )
        assert metrics["runstream_ingest_points_written_total"] == stream.total
        assert metrics["runstream_ingest_batches_written_total"] == 10
        assert metrics["runstream_ingest_retries_total"] == 0
        assert metrics["runstream_ingest_write_seconds_count"] >= 1
        with pytest.raises(IngestStateError):
            await worker.start()
    await worker.stop()  # idempotent
    with pytest.raises(IngestStateError):
        await worker.start()
    await stream.check_exactly_once(db)


async def test_postgres_outage_retries_without_losing_or_duplicating(settings: Settings, db: asyncpg.Pool) -> None:
    url = urlsplit(settings.database_url)
    proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 5432)
    port = await proxy.start()
    through_proxy = urlunsplit(url._replace(netloc=f"{url.username}@127.0.0.1:{port}"))
    mine = dataclasses.replace(private(settings, "outage"), database_url=through_proxy)
    stream = Stream(runs=3, batches_per_run=40, points_per_batch=500)
    records = stream.records()
    first, second = records[:30], records[30:]
    options = IngestOptions(retry_initial_seconds=0.05, retry_max_seconds=0.5)
    async with IngestWorker(mine, options=options, metrics_port=free_port()) as worker:
        await produce_all(mine, mine.topic, first)
        await eventually(lambda: stream.stored(db), lambda n: n >= 30 * 500, what="first part stored")
        await proxy.cut()
        await produce_all(mine, mine.topic, second)

        async def retries() -> float:
            return worker.metrics.registry.get_sample_value("runstream_ingest_retries_total") or 0.0

        await eventually(retries, lambda n: n >= 3, what="retries during the outage")
        assert await stream.stored(db) == 30 * 500  # nothing written while PostgreSQL is away
        await proxy.start()
        await eventually(lambda: stream.stored(db), lambda n: n >= stream.total, what="all points stored")
    await proxy.cut()
    await stream.check_exactly_once(db)


@contextlib.asynccontextmanager
async def own_database(admin_dsn: str, *, schema_version: int | None = None) -> AsyncIterator[str]:
    """A database of the test's own, migrated to ``schema_version`` (default: current).

    Fast liveness sweeps would touch every other test's runs, and a migration
    test needs an older schema.
    """
    name = f"ingest_live_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        dsn = with_database(admin_dsn, name)
        await migrate(dsn, target=schema_version)
        yield dsn
    finally:
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def proxied_database(admin_dsn: str) -> AsyncIterator[tuple[str, TcpProxy, str]]:
    """A database of the test's own: (its DSN, a TcpProxy the test can cut, the DSN through the proxy)."""
    async with own_database(admin_dsn) as dsn:
        url = urlsplit(dsn)
        proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 5432)
        port = await proxy.start()
        try:
            yield dsn, proxy, urlunsplit(url._replace(netloc=f"{url.username}@127.0.0.1:{port}"))
        finally:
            await proxy.cut()


async def test_silent_runs_turn_not_responding_then_failed(settings: Settings, services: Services) -> None:
    async with own_database(services.admin_dsn) as dsn:
        await _check_liveness(settings, dsn)


async def test_no_run_is_failed_for_silence_that_was_a_postgres_outage(settings: Settings, services: Services) -> None:
    async with (
        proxied_database(services.admin_dsn) as (dsn, proxy, proxied),
        asyncpg.create_pool(dsn, min_size=1, max_size=2) as db,
    ):
        mine = dataclasses.replace(
            private(settings, "live-outage"),
            database_url=proxied,
            not_responding_after_seconds=1.0,
            failed_after_seconds=2.0,
        )
        options = IngestOptions(
            liveness_interval_seconds=0.05,
            retry_initial_seconds=0.05,
            retry_max_seconds=0.2,
        )
        run, session = new_id(), new_id()

        async def last_seq() -> int | None:
            return await db.fetchval("SELECT last_seq FROM producer_sessions WHERE session_id = $1", session)

        async with IngestWorker(mine, options=options, metrics_port=0) as worker:
            await produce_all(mine, mine.topic, [(run, raw(run, session, 1, started(time=time.time())))])
            await eventually(last_seq, lambda seq: seq == 1)
            await proxy.cut()
            heartbeat = {"type": "heartbeat", "time": time.time()}
            await produce_all(mine, mine.topic, [(run, raw(run, session, 2, heartbeat))])

            async def retries() -> float:
                return worker.metrics.registry.get_sample_value("runstream_ingest_retries_total") or 0.0

            await eventually(retries, lambda n: n >= 1, what="the worker noticed the outage")
            await asyncio.sleep(3.0)  # the outage outlasts failed_after_seconds
            await proxy.start()
            await eventually(last_seq, lambda seq: seq == 2, what="the heartbeat stored")
        await proxy.cut()
        row = await db.fetchrow("SELECT status, error FROM runs WHERE id = $1", run)
        assert (row["status"], row["error"]) == ("Running", None)
        history = await db.fetch("SELECT status FROM status_history WHERE run_id = $1 ORDER BY time", run)
        assert [h["status"] for h in history] == ["Running"]


async def _check_liveness(settings: Settings, dsn: str) -> None:
    await migrate(dsn)
    mine = dataclasses.replace(
        private(settings, "live"), database_url=dsn, not_responding_after_seconds=0.5, failed_after_seconds=3.0
    )
    options = IngestOptions(liveness_interval_seconds=0.05)
    quiet, back, logs, s1, s2, s3 = new_id(), new_id(), new_id(), new_id(), new_id(), new_id()
    async with (
        asyncpg.create_pool(dsn, min_size=1, max_size=2) as db,
        IngestWorker(mine, options=options, metrics_port=0),
    ):

        async def statuses() -> dict[str, str]:
            rows = await db.fetch("SELECT id, status FROM runs WHERE id = ANY($1::uuid[])", [quiet, back, logs])
            return {str(r["id"]): r["status"] for r in rows}

        now = time.time()
        await produce_all(
            mine,
            mine.topic,
            [
                (quiet, raw(quiet, s1, 1, started(time=now))),
                (back, raw(back, s2, 1, started(time=now))),
                (logs, raw(logs, s3, 1, started(time=now))),
            ],
        )
        await eventually(statuses, lambda s: set(s.values()) == {"NotResponding"} and len(s) == 3)
        await produce_all(
            mine,
            mine.topic,
            [
                (back, raw(back, s2, 2, {"type": "heartbeat", "time": time.time()})),
                (logs, raw(logs, s3, 2, scalars("x", "float", [1.0], time=time.time()))),
            ],
        )
        await eventually(statuses, lambda s: s[back] == s[logs] == "Running" and s[quiet] == "NotResponding")
        await eventually(statuses, lambda s: s[quiet] == "Failed", timeout_seconds=20)
        await produce_all(mine, mine.topic, [(quiet, raw(quiet, s1, 2, {"type": "heartbeat", "time": time.time()}))])
        await eventually(
            lambda: db.fetchval("SELECT last_seq FROM producer_sessions WHERE session_id = $1", s1),
            lambda seq: seq == 2,
        )
        row = await db.fetchrow("SELECT status, error, ended_at FROM runs WHERE id = $1", quiet)
        assert row["status"] == "Failed" and orjson.loads(row["error"]) == {"reason": "no heartbeat"}
        assert row["ended_at"] is not None
        history = await db.fetch("SELECT status FROM status_history WHERE run_id = $1 ORDER BY time", quiet)
        assert [h["status"] for h in history] == ["Running", "NotResponding", "Failed"]
        for run in (back, logs):
            history = await db.fetch("SELECT status FROM status_history WHERE run_id = $1 ORDER BY time", run)
            assert [h["status"] for h in history][:3] == ["Running", "NotResponding", "Running"]


async def test_a_record_too_large_for_the_dead_letter_topic_is_truncated_not_stuck(
    settings: Settings, db: asyncpg.Pool
) -> None:
    mine = private(settings, "smalldlq")
    admin = AIOKafkaAdminClient(**client_options(mine))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(mine.dlq_topic, 1, 1, topic_configs={"max.message.bytes": "200000"})])
    finally:
        await admin.close()
    stream = Stream(runs=1, batches_per_run=2, points_per_batch=10)
    records = stream.records()
    huge = b"x" * (9 * 1024 * 1024)
    async with IngestWorker(mine, metrics_port=0):
        await produce_all(mine, mine.topic, [records[0], (stream.runs[0], huge), records[1]])
        await eventually(lambda: stream.stored(db), lambda n: n >= stream.total, what="all points stored")
    letters = await dead_letters(mine, set(await _offsets_of(mine, huge)))
    [letter] = letters.values()
    assert letter["reason"] == "too_large"
    assert letter["truncated_from_bytes"] == str(len(huge))
    assert letter["value"] == huge[: 64 * 1024]
    await stream.check_exactly_once(db)


async def _offsets_of(settings: Settings, value: bytes) -> list[tuple[int, int]]:
    """Where ``value`` sits in the events topic (read back from the start)."""
    consumer = AIOKafkaConsumer(
        settings.topic,
        **client_options(settings),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=32 * 1024 * 1024,
    )
    await consumer.start()
    found: list[tuple[int, int]] = []
    try:
        deadline = time.monotonic() + 30
        while not found and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                found += [(m.partition, m.offset) for m in messages if m.value == value]
    finally:
        await consumer.stop()
    return found


async def test_points_are_stored_many_to_a_chunk_bit_for_bit(settings: Settings, db: asyncpg.Pool) -> None:
    mine = private(settings, "chunks")
    run, session = new_id(), new_id()
    floats = [0.5, math.nan, math.inf, -math.inf, -0.0, 1e-300, 5e300]
    records = [
        (run, raw(run, session, 1, started(), scalars("loss", "float", floats[:3]), scalars("n", "int", [1, 2]))),
        (
            run,
            raw(
                run,
                session,
                2,
                scalars("loss", "float", floats[3:], first_step=3, time=T0 + 3, first_ordinal=3),
                scalars("phase", "str", ["a", "b ✓"]),
            ),
        ),
    ]
    async with IngestWorker(mine, metrics_port=0):
        await produce_all(mine, mine.topic, records)
        await eventually(
            lambda: db.fetchval("SELECT last_seq FROM producer_sessions WHERE session_id = $1", session),
            lambda seq: seq == 2,
        )
    rows = await db.fetch(
        "SELECT s.name, c.* FROM point_chunks c JOIN series s ON s.id = c.series_id WHERE s.run_id = $1"
        " ORDER BY s.name, c.step_min",
        run,
    )
    got: dict[str, list[tuple[int, float, int, Any]]] = {}
    for row in rows:
        chunk = decode_row(row)
        values = chunk.values if isinstance(chunk.values, list) else chunk.values.tolist()
        got.setdefault(row["name"], []).extend(
            zip(chunk.steps.tolist(), chunk.times.tolist(), chunk.ordinals.tolist(), values, strict=True)
        )
    assert sorted(got) == ["loss", "n", "phase"]
    loss = got["loss"]
    assert [p[0] for p in loss] == list(range(7))
    assert [p[1] for p in loss] == [T0, T0 + 1, T0 + 2, T0 + 3, T0 + 4, T0 + 5, T0 + 6]
    assert [p[2] for p in loss] == list(range(7))
    assert [struct.pack("<d", p[3]) for p in loss] == [struct.pack("<d", v) for v in floats]  # bit for bit
    assert got["n"] == [(0, T0, 0, 1.0), (1, T0 + 1, 1, 2.0)]
    assert got["phase"] == [(0, T0, 0, "a"), (1, T0 + 1, 1, "b ✓")]
    summary = await db.fetchrow("SELECT * FROM series WHERE run_id = $1 AND name = 'loss'", run)
    assert (summary["point_count"], summary["first_time"]) == (7, T0)
    assert (
        summary["first_day"]
        == summary["last_day"]
        == await db.fetchval("SELECT max(stored_day) FROM point_chunks WHERE series_id = $1", summary["id"])
    )


async def test_a_taken_metrics_port_is_a_clear_start_error(settings: Settings) -> None:
    mine = private(settings, "port")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        worker = IngestWorker(mine, metrics_port=taken.getsockname()[1])
        with pytest.raises(IngestStartError, match="cannot serve metrics"):
            await worker.start()
    await worker.stop()
