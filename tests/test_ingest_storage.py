"""Storage of points: the 0004 conversion of old rows, daily partitions, retention (of point partitions and
of whole runs), dropping an experiment."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import math
import os
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest

from ingest import (
    DroppedRuns,
    IngestOptions,
    IngestWorker,
    PackedChunks,
    UnknownExperimentError,
    drop_expired_runs,
    pack_raw_chunks,
)
from ingest._compaction import SMALL_CHUNK_POINTS, ChunkCompactor
from ingest._partitions import PointPartitions, utc_day
from query import LocalArtifactStore
from query._artifact_gc import collect_artifacts
from runstream.chunks import CHUNK_COLUMNS, PACKED, RAW, decode_row, encode_chunk
from runstream.config import Settings
from runstream.schema import migrate
from tests.conftest import Services
from tests.support import eventually
from tests.test_ingest_recovery import private
from tests.test_ingest_support import T0, new_id, points, produce_all, raw, scalars, started
from tests.test_ingest_worker import own_database


async def _seed_run(conn: asyncpg.Connection, experiment: str) -> uuid.UUID:
    await conn.execute("INSERT INTO experiments (name) VALUES ($1) ON CONFLICT DO NOTHING", experiment)
    run = uuid.uuid4()
    await conn.execute(
        "INSERT INTO runs (id, experiment_id, status, created_at)"
        " SELECT $1, id, 'Running', now() FROM experiments WHERE name = $2",
        run,
        experiment,
    )
    return run


async def _series(conn: asyncpg.Connection, run: uuid.UUID, name: str, value_type: str) -> int:
    series_id: int = await conn.fetchval(
        "INSERT INTO series (run_id, name, kind, value_type) VALUES ($1, $2, 'scalar', $3) RETURNING id",
        run,
        name,
        value_type,
    )
    return series_id


async def _chunks_of(conn: asyncpg.Connection, series_id: int) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM point_chunks WHERE series_id = $1 ORDER BY time_start", series_id)


def _points(chunks: list[asyncpg.Record]) -> list[tuple[int, float, int, Any]]:
    out = []
    for row in chunks:
        c = decode_row(row)
        values = c.values if isinstance(c.values, list) else c.values.tolist()
        out += zip(c.steps.tolist(), c.times.tolist(), c.ordinals.tolist(), values, strict=True)
    return sorted(out, key=lambda p: (p[1], p[2]))


async def test_migration_0004_turns_old_point_rows_into_chunks_bit_for_bit(services: Services) -> None:
    """Every old row survives: float values bit for bit (NaN, ±Inf, -0.0), strings, steps, times, ordinals."""
    rng = np.random.default_rng(7)
    n = 25_000  # three chunks of at most 10,000
    specials = [math.nan, math.inf, -math.inf, -0.0, 5e-324]
    floats = [*specials, *rng.normal(size=n - len(specials)).tolist()]
    # Times that go backwards now and then, and a day boundary inside the series.
    times = (T0 + np.arange(n) * 10.0 + rng.integers(0, 3, size=n) * 0.5).tolist()
    steps = rng.permutation(n).tolist()
    async with own_database(services.admin_dsn, schema_version=3) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            run = await _seed_run(conn, "old")
            loss = await _series(conn, run, "loss", "float")
            phase = await _series(conn, run, "phase", "str")
            await conn.copy_records_to_table(
                "points",
                columns=["series_id", "step", "time", "ordinal", "value", "text_value"],
                records=[
                    *[(loss, steps[i], times[i], i, floats[i], None) for i in range(n)],
                    *[(phase, i, T0 + i, i, None, f"p{i} ✓") for i in range(3)],
                ],
            )
            assert (await migrate(dsn))[0] == "0004_partitioned_point_chunks.sql"
            loss_chunks = await _chunks_of(conn, loss)
            assert [c["n"] for c in loss_chunks] == [10_000, 10_000, 5_000]
            got = _points(loss_chunks)
            expected = sorted(zip(steps, times, range(n), floats, strict=True), key=lambda p: (p[1], p[2]))
            assert [p[:3] for p in got] == [p[:3] for p in expected]
            assert [struct.pack("<d", p[3]) for p in got] == [struct.pack("<d", p[3]) for p in expected]
            assert _points(await _chunks_of(conn, phase)) == [(i, T0 + i, i, f"p{i} ✓") for i in range(3)]
            first = loss_chunks[0]
            finite = [v for v in floats[:10_000] if math.isfinite(v)]
            assert (first["value_min"], first["value_max"]) == (min(finite), max(finite))
            summary = await conn.fetchrow("SELECT first_time, first_day, last_day FROM series WHERE id = $1", loss)
            assert summary["first_time"] == min(times)
            # Old rows count as stored on the day their chunk starts.
            last_start = loss_chunks[-1]["time_start"]
            assert (summary["first_day"], summary["last_day"]) == (utc_day(min(times)), utc_day(last_start))
            assert await conn.fetchval("SELECT to_regclass('points')") is None
            # 0005 counted the converted chunks that are small: the last one (5,000 points) is not.
            assert await conn.fetchval("SELECT small_chunks FROM series WHERE id = $1", phase) == 1
        finally:
            await conn.close()


async def test_retention_drops_whole_days_and_keeps_the_rest(services: Services) -> None:
    async with own_database(services.admin_dsn) as dsn, asyncpg.create_pool(dsn, min_size=1, max_size=2) as pool:
        partitions = PointPartitions(pool)
        today = utc_day()
        for day in (today - 10, today - 3, today - 2, today):
            await partitions.ensure(day)
            await partitions.ensure(day)  # idempotent
        names = await pool.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'point_chunks'::regclass ORDER BY 1"
        )
        assert len(names) == 4
        dropped = await partitions.drop_expired(2, today=today)
        assert len(dropped) == 2  # today-10 and today-3; today-2 is still within 2 days
        left = await pool.fetchval("SELECT count(*) FROM pg_inherits WHERE inhparent = 'point_chunks'::regclass")
        assert left == 2
        await partitions.ensure(today - 10)  # a day dropped is made again when asked for
        assert await partitions.drop_expired(2, today=today) == dropped[:1]


async def test_drop_experiment_command_asks_for_confirmation_and_reports(
    settings: Settings, services: Services
) -> None:
    async with own_database(services.admin_dsn) as dsn, asyncpg.create_pool(dsn, min_size=1, max_size=2) as pool:
        await PointPartitions(pool).ensure(utc_day())
        async with pool.acquire() as conn:
            kept_run = await _seed_run(conn, "kept")
            gone_run = await _seed_run(conn, "gone")
            for run in (kept_run, gone_run):
                series = await _series(conn, run, "loss", "float")
                await conn.execute(
                    "INSERT INTO point_chunks (series_id, time_start, time_end, n, ord_start, step_start,"
                    " step_stride, step_min, step_max, times, vals, stored_day)"
                    " VALUES ($1, 0, 1, 2, 0, 0, 1, 0, 1, $2, $3, $4)",
                    series,
                    np.zeros(2, "<u4").tobytes(),
                    np.ones(2, "<f8").tobytes(),
                    utc_day(),
                )
        env = {**settings.as_env(), "RUNSTREAM_DATABASE_URL": dsn, "PATH": "/usr/bin:/bin"}
        refused = subprocess.run(
            [sys.executable, "-m", "ops.cli", "drop-experiment", "gone"], env=env, capture_output=True, text=True
        )
        assert refused.returncode == 2 and "--yes" in refused.stderr
        done = subprocess.run(
            [sys.executable, "-m", "ops.cli", "drop-experiment", "gone", "--yes"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        assert "1 run(s), 1 series, 2 point(s)" in done.stdout
        assert await pool.fetchval("SELECT count(*) FROM runs") == 1
        assert await pool.fetchval("SELECT sum(n) FROM point_chunks") == 2
        missing = subprocess.run(
            [sys.executable, "-m", "ops.cli", "drop-experiment", "gone", "--yes"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert missing.returncode == 1 and "no experiment named 'gone'" in missing.stderr


async def _ended_run(
    conn: asyncpg.Connection, experiment: str, days_ago: int | None, parent: uuid.UUID | None = None
) -> uuid.UUID:
    """A run that ended (Completed) ``days_ago`` days ago, or one started 60 days ago and still Running (None)."""
    run = await _seed_run(conn, experiment)
    ended = None if days_ago is None else datetime.timedelta(days=days_ago)
    await conn.execute(
        "UPDATE runs SET parent_id = $2, status = CASE WHEN $3::interval IS NULL THEN 'Running' ELSE 'Completed' END,"
        " created_at = now() - coalesce($3::interval, interval '60 days') - interval '1 hour',"
        " ended_at = now() - $3::interval WHERE id = $1",
        run,
        parent,
        ended,
    )
    return run


async def _one_of_everything(conn: asyncpg.Connection, run: uuid.UUID, blob: str) -> None:
    """Two points, a table row, a status change and a file (uploaded 40 days ago) for ``run``."""
    loss = await _series(conn, run, "loss", "float")
    await _copy_chunks(conn, loss, utc_day(), [([0, 1], [T0, T0 + 1], [0, 1], [0.5, 0.25])])
    table = await conn.fetchval(
        "INSERT INTO series (run_id, name, kind) VALUES ($1, 'samples', 'table') RETURNING id", run
    )
    await conn.execute("INSERT INTO series_entries VALUES ($1, $2, 0, '{\"a\": [1]}')", table, T0)
    await conn.execute("INSERT INTO status_history VALUES ($1, 'Completed', now(), NULL)", run)
    await conn.execute(
        "INSERT INTO files (run_id, name, digest, size, content_type, created_at)"
        " VALUES ($1, 'model.bin', $2, 4, 'application/octet-stream', now() - interval '40 days')",
        run,
        blob,
    )


async def _stored_blob(store: LocalArtifactStore, content: bytes) -> str:
    async def chunks() -> AsyncIterator[bytes]:
        yield content

    await store.start()
    return (await store.put(chunks(), max_bytes=1024)).digest


async def test_run_retention_drops_whole_ended_trees_and_gc_reclaims_their_files(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    old_blob, kept_blob = await _stored_blob(store, b"old!"), await _stored_blob(store, b"kept")
    async with own_database(services.admin_dsn) as dsn, asyncpg.create_pool(dsn, min_size=1, max_size=2) as pool:
        await PointPartitions(pool).ensure(utc_day())
        async with pool.acquire() as conn:
            # "old": a tree ended 40 days ago (child earlier), a tree whose child still runs, a run
            # ended 5 days ago, a run started 60 days ago and running; "other": a run ended 40 days ago.
            parent = await _ended_run(conn, "old", 40)
            child = await _ended_run(conn, "old", 41, parent=parent)
            live_parent = await _ended_run(conn, "old", 40)
            kept = [live_parent, await _ended_run(conn, "old", None, parent=live_parent)]
            kept += [await _ended_run(conn, "old", 5), await _ended_run(conn, "old", None)]
            other = await _ended_run(conn, "other", 40)
            for run in (parent, child, other):
                await _one_of_everything(conn, run, old_blob)
            await _one_of_everything(conn, kept[2], kept_blob)
        env = {**settings.as_env(), "RUNSTREAM_DATABASE_URL": dsn, "PATH": "/usr/bin:/bin"}

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            argv = [sys.executable, "-m", "ops.cli", "retention", "--older-than-days", "30", *args]
            return subprocess.run(argv, env=env, capture_output=True, text=True, check=False)

        dry = cli("--experiment", "old")
        assert dry.returncode == 0, dry.stderr
        assert "would delete (add --yes to delete) 2 run(s), 4 series, 4 point(s), 2 entries, 2 file(s)" in dry.stdout
        assert await pool.fetchval("SELECT count(*) FROM runs") == 7

        dropped = await drop_expired_runs(dsn, older_than_days=30, experiment="old")
        assert dropped == DroppedRuns(runs=2, series=4, points=4, entries=2, files=2)
        remaining = {r["id"] for r in await pool.fetch("SELECT id FROM runs")}
        assert remaining == {*kept, other}
        for table in ("series", "status_history", "files"):
            count = f"SELECT count(*) FROM {table} WHERE run_id = ANY($1::uuid[])"
            assert await pool.fetchval(count, [parent, child]) == (2 if table == "files" else 0)
        assert await pool.fetchval("SELECT sum(n) FROM point_chunks") == 4  # kept[2]'s and other's
        assert await pool.fetchval("SELECT count(*) FROM series_entries") == 2
        assert await drop_expired_runs(dsn, older_than_days=30, experiment="old") == DroppedRuns()
        with pytest.raises(UnknownExperimentError):
            await drop_expired_runs(dsn, older_than_days=30, experiment="nobody")

        done = cli("--yes")  # every experiment: "other" now
        assert done.returncode == 0, done.stderr
        assert "deleted 1 run(s), 2 series, 2 point(s), 1 entries, 1 file(s)" in done.stdout
        assert "gc-artifacts" in done.stdout

        # The runs gone, their file rows and then the blob no row references go; the kept run's stays.
        blobs = {digest: tmp_path / "artifacts" / "sha256" / digest[:2] / digest for digest in (old_blob, kept_blob)}
        for path in blobs.values():
            os.utime(path, (time.time() - 7200, time.time() - 7200))  # committed two hours ago
        report = await collect_artifacts(dsn, store)
        assert (report.file_rows, report.blobs) == (3, 1)
        assert [r["digest"] for r in await pool.fetch("SELECT digest FROM files")] == [kept_blob]
        assert blobs[kept_blob].exists() and not blobs[old_blob].exists()


async def _copy_chunks(conn: asyncpg.Connection, series_id: int, day: int, parts: list[tuple[Any, ...]]) -> None:
    is_text = any(isinstance(v, str) for part in parts for v in part[3])
    await conn.copy_records_to_table(
        "point_chunks",
        columns=(*CHUNK_COLUMNS, "stored_day"),
        records=[(*encode_chunk(series_id, *part, is_text=is_text), day) for part in parts],
    )
    small = sum(1 for part in parts if len(part[0]) < SMALL_CHUNK_POINTS)
    await conn.execute(
        "UPDATE series SET small_chunks = small_chunks + $2, first_day = least(first_day, $3),"
        " last_day = greatest(last_day, $3) WHERE id = $1",
        series_id,
        small,
        day,
    )


async def test_compaction_merges_small_chunks_per_day_and_changes_no_point(services: Services) -> None:
    today = utc_day()
    async with own_database(services.admin_dsn) as dsn, asyncpg.create_pool(dsn, min_size=1, max_size=2) as pool:
        partitions = PointPartitions(pool)
        for day in (today - 1, today):
            await partitions.ensure(day)
        async with pool.acquire() as conn:
            run = await _seed_run(conn, "slow")
            loss = await _series(conn, run, "loss", "float")
            phase = await _series(conn, run, "phase", "str")
            # Two producer sessions interleaved in time (ordinals restart), NaN
            # included; yesterday's chunks stay in yesterday's partition.
            parts = [
                (
                    list(range(i, i + 3)),
                    [T0 + i + k / 10 for k in range(3)],
                    [i + k for k in range(3)],
                    [i, math.nan, -i],
                )
                for i in range(0, 60, 3)
            ]
            other = [([100 + i], [T0 + i + 0.05], [i], [0.5]) for i in range(10)]
            await _copy_chunks(conn, loss, today - 1, parts[:2])
            await _copy_chunks(conn, loss, today, parts[2:] + other)
            big = (list(range(2000)), [T0 + 500 + k for k in range(2000)], list(range(2000)), [1.0] * 2000)
            await _copy_chunks(conn, loss, today, [big])
            await _copy_chunks(conn, phase, today, [([i], [T0 + i], [i], [f"p{i}"]) for i in range(12)])
            before = {s: _points(await _chunks_of(conn, s)) for s in (loss, phase)}
            assert await conn.fetchval("SELECT small_chunks FROM series WHERE id = $1", loss) == 30

        compactor = ChunkCompactor(pool, merge_at=8)
        # loss: yesterday's 2 into 1, today's 28 into 1 (the 2,000-point chunk
        # is not small and stays); phase: 12 into 1.
        assert await compactor.compact() == 1 + 27 + 11
        async with pool.acquire() as conn:
            after = {s: _points(await _chunks_of(conn, s)) for s in (loss, phase)}
            assert [(p[0], p[1], p[2]) for p in after[loss]] == [(p[0], p[1], p[2]) for p in before[loss]]
            assert [struct.pack("<d", p[3]) for p in after[loss]] == [struct.pack("<d", p[3]) for p in before[loss]]
            assert after[phase] == before[phase]
            days = await conn.fetch(
                "SELECT stored_day, n FROM point_chunks WHERE series_id = $1 ORDER BY stored_day, n", loss
            )
            assert [(d["stored_day"], d["n"]) for d in days] == [(today - 1, 6), (today, 64), (today, 2000)]
            assert await conn.fetchval("SELECT small_chunks FROM series WHERE id = $1", loss) == 2
        assert await compactor.compact() == 0  # below merge_at now


@contextlib.asynccontextmanager
async def _float_series(services: Services, run: str) -> AsyncIterator[tuple[str, asyncpg.Pool, int, int]]:
    """A database of its own with today's partition and one float series ``loss`` of a run: (dsn, pool, id, day)."""
    today = utc_day()
    async with own_database(services.admin_dsn) as dsn, asyncpg.create_pool(dsn, min_size=1, max_size=2) as pool:
        await PointPartitions(pool).ensure(today)
        async with pool.acquire() as conn:
            series_id = await _series(conn, await _seed_run(conn, run), "loss", "float")
        yield dsn, pool, series_id, today


async def test_compaction_packs_what_it_merges_into_a_large_chunk(services: Services) -> None:
    """Small raw chunks merged into SMALL_CHUNK_POINTS or more come out packed, every point's bits kept."""
    async with _float_series(services, "packed") as (dsn, pool, loss, today):
        async with pool.acquire() as conn:
            rng = np.random.default_rng(5)
            values = rng.normal(0, 1, 1_500).astype(np.float32).astype(np.float64).tolist()
            values[7], values[8], values[9] = math.nan, -math.inf, -0.0
            parts = [
                (
                    list(range(i, i + 50)),
                    [T0 + k / 100 for k in range(i, i + 50)],
                    list(range(i, i + 50)),
                    values[i : i + 50],
                )
                for i in range(0, 1_500, 50)
            ]
            await _copy_chunks(conn, loss, today, parts)
            before = _points(await _chunks_of(conn, loss))
            assert await conn.fetchval("SELECT count(*) FROM point_chunks WHERE codec = $1", PACKED) == 0

        assert await ChunkCompactor(pool, merge_at=8).compact() == 29
        async with pool.acquire() as conn:
            after = _points(await _chunks_of(conn, loss))
            assert [p[:3] for p in after] == [p[:3] for p in before]
            assert [struct.pack("<d", p[3]) for p in after] == [struct.pack("<d", v) for v in values]
            chunk = await conn.fetchrow(
                "SELECT n, codec, length(vals) AS size FROM point_chunks WHERE series_id = $1", loss
            )
            assert (chunk["n"], chunk["codec"]) == (1_500, PACKED)
            assert chunk["size"] < 8 * 1_500


async def test_pack_chunks_rewrites_the_large_raw_chunks_of_earlier_versions_and_changes_no_point(
    services: Services,
) -> None:
    async with _float_series(services, "old") as (dsn, pool, loss, today):
        async with pool.acquire() as conn:
            rng = np.random.default_rng(9)
            n = SMALL_CHUNK_POINTS + 500
            values = rng.normal(0, 1, 3 * n).astype(np.float32).astype(np.float64)
            values[3], values[4] = math.nan, math.inf
            times = T0 + np.cumsum(rng.integers(0, 3_000, 3 * n)) / 1e6
            steps = np.arange(3 * n)
            # As a flush writes them, and as every version before the codec did: raw, however large.
            records = [
                (*encode_chunk(loss, steps[part], times[part], steps[part], values[part]), today)
                for part in (slice(i * n, (i + 1) * n) for i in range(3))
            ]
            assert {r[-2] for r in records} == {RAW}
            await conn.copy_records_to_table("point_chunks", columns=(*CHUNK_COLUMNS, "stored_day"), records=records)
            small = [([3 * n], [T0 + 1e4], [3 * n], [0.5])]  # too small to pack: compaction's
            await _copy_chunks(conn, loss, today, small)
            before = _points(await _chunks_of(conn, loss))

        packed = await pack_raw_chunks(dsn, batch_chunks=2)
        assert (packed.chunks, packed.points) == (3, 3 * n)
        assert packed.bytes_after < packed.bytes_before / 2
        async with pool.acquire() as conn:
            after = _points(await _chunks_of(conn, loss))
            assert [p[:3] for p in after] == [p[:3] for p in before]
            assert [struct.pack("<d", p[3]) for p in after] == [struct.pack("<d", p[3]) for p in before]
            codecs = await conn.fetch("SELECT n, codec FROM point_chunks WHERE series_id = $1 ORDER BY n", loss)
            assert [(r["n"], r["codec"]) for r in codecs] == [(1, RAW)] + [(n, PACKED)] * 3
        assert await pack_raw_chunks(dsn) == PackedChunks()  # nothing left: running it again is harmless


async def test_compaction_packs_the_large_chunks_flushes_wrote_once_their_last_point_is_as_old_as_its_age(
    services: Services,
) -> None:
    async with _float_series(services, "busy") as (dsn, pool, busy, today):
        async with pool.acquire() as conn:
            n = SMALL_CHUNK_POINTS
            now = time.time()
            parts = [  # a chunk whose last point is two hours old, and one whose last point is 10 s old
                (
                    list(range(start, start + n)),
                    [end - (n - k) * 1e-3 for k in range(1, n + 1)],
                    list(range(start, start + n)),
                    [k / 7 for k in range(n)],
                )
                for start, end in ((0, now - 7200), (n, now - 10))
            ]
            await _copy_chunks(conn, busy, today, parts)
            before = _points(await _chunks_of(conn, busy))

        assert await ChunkCompactor(pool, age_seconds=60).compact() == 0  # nothing merged: both are large
        async with pool.acquire() as conn:
            codecs = await conn.fetch("SELECT step_min, codec FROM point_chunks WHERE series_id = $1", busy)
            assert sorted((r["step_min"], r["codec"]) for r in codecs) == [(0, PACKED), (n, RAW)]
            assert _points(await _chunks_of(conn, busy)) == before
        await ChunkCompactor(pool, age_seconds=5).compact()
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT array_agg(DISTINCT codec) FROM point_chunks") == [PACKED]
            assert _points(await _chunks_of(conn, busy)) == before


async def test_a_worker_compacts_a_slowly_logged_series(settings: Settings, db: asyncpg.Pool) -> None:
    """One small chunk per flush, as a metric logged once per training step gets; the worker merges them."""
    mine = private(settings, "compaction")
    run, session = new_id(), new_id()

    async def last_seq() -> int | None:
        return await db.fetchval("SELECT last_seq FROM producer_sessions WHERE session_id = $1", session)

    async def chunks() -> list[int]:
        rows = await db.fetch(
            "SELECT c.n FROM point_chunks c JOIN series s ON s.id = c.series_id WHERE s.run_id = $1", run
        )
        return [r["n"] for r in rows]

    async with IngestWorker(mine, options=IngestOptions(compaction_interval_seconds=3600), metrics_port=0):
        # Compaction off for now (an hour away): every record is its own flush, so its own chunk.
        for seq in range(1, 11):
            events = [started(time=T0)] if seq == 1 else []
            events.append(
                scalars("loss", "float", [seq, -seq], first_step=2 * seq, time=T0 + seq, first_ordinal=2 * seq)
            )
            await produce_all(mine, mine.topic, [(run, raw(run, session, seq, *events))])
            await eventually(last_seq, lambda s, seq=seq: s == seq)
    assert await chunks() == [2] * 10
    before = await points(db, run, "loss")
    async with IngestWorker(
        mine, options=IngestOptions(compaction_interval_seconds=0.1, compaction_age_seconds=0), metrics_port=0
    ):
        await eventually(chunks, lambda n: n == [20], what="the ten chunks merged into one")
    assert await points(db, run, "loss") == before


async def test_two_compactors_share_the_work_without_overlap_while_chunks_arrive_and_readers_read(
    services: Services,
) -> None:
    """Two workers' compactors claim disjoint batches (SKIP LOCKED); no point is lost or doubled, for a reader too."""
    today = utc_day()
    series_count, chunks_each = 60, 10
    async with (
        own_database(services.admin_dsn) as dsn,
        asyncpg.create_pool(dsn, min_size=1, max_size=4) as pool,
        asyncpg.create_pool(dsn, min_size=1, max_size=2) as other,
    ):
        await PointPartitions(pool).ensure(today)
        async with pool.acquire() as conn:
            run = await _seed_run(conn, "many")
            ids = [await _series(conn, run, f"m{i}", "float") for i in range(series_count)]
            for k, series_id in enumerate(ids):
                parts = [([j], [T0 + j + k / 100], [j], [float(k * 100 + j)]) for j in range(chunks_each)]
                await _copy_chunks(conn, series_id, today, parts)
        claimed: list[list[int]] = [[], []]
        compactors = [
            ChunkCompactor(p, merge_at=8, batch_series=7, observe=lambda s, _p, _t, i=i: claimed[i].append(s))
            for i, p in enumerate((pool, other))
        ]
        expected = series_count * chunks_each

        async def read() -> list[int]:
            """Points as a reader counts them, each snapshot whole: never fewer than written, never more."""
            seen = []
            while not done.is_set():
                seen.append(await pool.fetchval("SELECT sum(n) FROM point_chunks WHERE series_id = ANY($1)", ids))
            return seen

        async def write() -> int:
            """One more small chunk per series while the compactors run (a writer's flush)."""
            async with pool.acquire() as conn:
                for series_id in ids[::2]:
                    await _copy_chunks(conn, series_id, today, [([99], [T0 + 99], [99], [-1.0])])
            return len(ids[::2])

        done = asyncio.Event()
        reader = asyncio.create_task(read())
        removed, added = await asyncio.gather(asyncio.gather(*(c.compact() for c in compactors)), write())
        done.set()
        seen = await reader
        assert all(claimed), "both compactors took batches"
        assert sum(map(sum, claimed)) == series_count  # each series merged once, by one of them
        # Merged to one chunk per series, with any new chunk the compactor already saw.
        assert series_count * (chunks_each - 1) <= sum(removed) <= series_count * (chunks_each - 1) + added
        assert all(expected <= s <= expected + added for s in seen)
        rows = await pool.fetch(
            "SELECT series_id, sum(n) AS n, count(*) AS chunks FROM point_chunks GROUP BY series_id ORDER BY series_id"
        )
        assert {r["series_id"]: r["n"] for r in rows} == {i: chunks_each + (i in ids[::2]) for i in ids}
        assert all(r["chunks"] <= 2 for r in rows)
        async with pool.acquire() as conn:
            for k, series_id in enumerate(ids[:3]):
                got = _points(await _chunks_of(conn, series_id))
                assert [p[3] for p in got if p[0] != 99] == [float(k * 100 + j) for j in range(chunks_each)]
