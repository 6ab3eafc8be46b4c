"""Compare point layouts: ``python -m bench.layout [--series-points N]``.

The measurement behind docs/storage-layout.md. In a scratch database of its
own (created and dropped on the PostgreSQL of ``RUNSTREAM_DATABASE_URL``), it
stores the same float series three times, with twenty such series per layout
so that pages are shared as in real use:

- ``rows``: a row per point, indexed on (series_id, time, ordinal): the layout
  of migration 0001;
- ``chunks(K)``: ingest's real ``point_chunks`` (migrations applied), K points
  per chunk, for K in 10, 100, 1,000 and 10,000.

For each it prints: write rate (binary COPY, encoding included), bytes per
point (``pg_total_relation_size`` of the tables and their indexes, partitions
summed), and the median of 5 reads into numpy arrays of one whole series and
of a 1,000-step range in its middle.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import numpy as np

from ingest._partitions import utc_day
from runstream.chunks import CHUNK_COLUMNS, DECODE_COLUMNS, PointColumns, decode_row, encode_chunks
from runstream.config import Settings
from runstream.dsn import with_database
from runstream.schema import migrate

__all__ = ["copy_series", "today_partition"]

_SERIES = 20
_REPS = 5


async def today_partition(conn: asyncpg.Connection) -> int:
    """Create today's ``point_chunks`` partition (ingest's workers do in a live system); return its day."""
    day = utc_day()
    await conn.fetchval("SELECT runstream_point_partition($1)", day)
    return day


async def copy_series(
    conn: asyncpg.Connection, series_id: int, columns: tuple[Any, ...], per_chunk: int, day: int, *, pack: bool
) -> None:
    """Store one series' (steps, times, ordinals, values) as ``point_chunks`` of ``per_chunk`` points.

    Encoded by :func:`runstream.chunks.encode_chunks`, raw as ingest's flush
    writes them or, with ``pack``, as compaction leaves them, into the
    partition of ``day`` (see :func:`today_partition`).
    """
    pieces = [PointColumns(*(c[i : i + per_chunk] for c in columns)) for i in range(0, len(columns[0]), per_chunk)]
    records = [(*record, day) for record in encode_chunks([series_id] * len(pieces), pieces, pack=pack)]
    await conn.copy_records_to_table("point_chunks", columns=(*CHUNK_COLUMNS, "stored_day"), records=records)


def _series(n: int, seed: int) -> tuple[Any, Any, Any, Any]:
    """A training-like series: steps 0..n-1, a point every ~10 ms, a noisy decaying loss."""
    rng = np.random.default_rng(seed)
    steps = np.arange(n, dtype=np.int64)
    times = 1_764_000_000.0 + np.cumsum(rng.uniform(0.005, 0.015, n))
    values = np.exp(-steps / n * 3) + rng.normal(0, 0.01, n)
    return steps, times, steps.copy(), values


async def _rows_layout(conn: asyncpg.Connection, data: list[tuple[Any, ...]]) -> dict[str, Any]:
    await conn.execute(
        "CREATE TABLE rows_points (series_id bigint NOT NULL, step bigint NOT NULL,"
        " time double precision NOT NULL, ordinal bigint NOT NULL, value double precision, text_value text);"
        "CREATE INDEX ON rows_points (series_id, time, ordinal)"
    )
    started = time.perf_counter()
    for sid, (steps, times, ords, values) in enumerate(data):
        await conn.copy_records_to_table(
            "rows_points",
            columns=["series_id", "step", "time", "ordinal", "value"],
            records=zip(
                [sid] * len(steps), steps.tolist(), times.tolist(), ords.tolist(), values.tolist(), strict=True
            ),
        )
    seconds = time.perf_counter() - started
    size = "SELECT pg_total_relation_size('rows_points')"

    async def read_all() -> Any:
        r = await conn.fetchrow(
            "SELECT array_agg(step) s, array_agg(time) t, array_agg(value) v FROM"
            " (SELECT step, time, value FROM rows_points WHERE series_id = 0 ORDER BY time, ordinal) o"
        )
        return np.asarray(r["v"], dtype=np.float64)

    async def read_range(lo: int, hi: int) -> Any:
        r = await conn.fetchrow(
            "SELECT array_agg(v) v FROM (SELECT value v FROM rows_points WHERE series_id = 0"
            " AND step BETWEEN $1 AND $2 ORDER BY time, ordinal) o",
            lo,
            hi,
        )
        return np.asarray(r["v"], dtype=np.float64)

    return {"seconds": seconds, "size_sql": size, "read_all": read_all, "read_range": read_range}


async def _chunks_layout(conn: asyncpg.Connection, data: list[tuple[Any, ...]], per_chunk: int) -> dict[str, Any]:
    await conn.execute("TRUNCATE point_chunks")
    day = utc_day()
    started = time.perf_counter()
    for sid, columns in enumerate(data):
        await copy_series(conn, sid, columns, per_chunk, day, pack=False)  # the layouts, before any codec
    seconds = time.perf_counter() - started
    size = "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits WHERE inhparent = 'point_chunks'::regclass"
    select = f"SELECT {', '.join(DECODE_COLUMNS)} FROM point_chunks WHERE series_id = 0"  # noqa: S608 - constant column names

    def values(rows: list[asyncpg.Record]) -> Any:
        chunks = [decode_row(r) for r in rows]
        return np.concatenate([c.values for c in chunks])

    async def read_all() -> Any:
        return values(await conn.fetch(select + " ORDER BY time_start"))

    async def read_range(lo: int, hi: int) -> Any:
        rows = await conn.fetch(select + " AND step_max >= $1 AND step_min <= $2 ORDER BY time_start", lo, hi)
        chunks = [decode_row(r) for r in rows]
        steps = np.concatenate([c.steps for c in chunks])
        vals = np.concatenate([c.values for c in chunks])
        return vals[(steps >= lo) & (steps <= hi)]

    return {"seconds": seconds, "size_sql": size, "read_all": read_all, "read_range": read_range}


async def _median_ms(read: Callable[[], Awaitable[Any]], expected: int) -> float:
    times = []
    for _ in range(_REPS):
        started = time.perf_counter()
        got = await read()
        times.append((time.perf_counter() - started) * 1000)
        if len(got) != expected:
            raise RuntimeError(f"read returned {len(got)} points, expected {expected}")
    return statistics.median(times)


async def _main(series_points: int) -> None:
    admin_dsn = Settings.from_env().database_url
    name = f"layout_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = with_database(admin_dsn, name)
    try:
        await migrate(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            await today_partition(conn)
            data = [_series(series_points, seed) for seed in range(_SERIES)]
            total = _SERIES * series_points
            lo = series_points // 2
            hi = lo + 999
            print(f"{_SERIES} float series x {series_points:,} points; reads: series 0 whole, steps {lo}..{hi}")
            print(f"{'layout':<14} {'write pts/s':>12} {'B/point':>8} {'read all ms':>12} {'read 1k ms':>11}")
            for label, make in [
                ("rows", lambda: _rows_layout(conn, data)),
                *[
                    (f"chunks({k:,})", lambda k=k: _chunks_layout(conn, data, k))  # type: ignore[misc]
                    for k in (10, 100, 1_000, 10_000)
                ],
            ]:
                layout = await make()
                await conn.execute("VACUUM ANALYZE")
                size = await conn.fetchval(layout["size_sql"])
                read_all = await _median_ms(layout["read_all"], series_points)
                read_range = await _median_ms(lambda lay=layout: lay["read_range"](lo, hi), 1000)  # type: ignore[misc]
                print(
                    f"{label:<14} {total / layout['seconds']:>12,.0f} {size / total:>8.1f}"
                    f" {read_all:>12.1f} {read_range:>11.1f}"
                )
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series-points", type=int, default=1_000_000, help="points per series (default 1,000,000)")
    args = parser.parse_args()
    asyncio.run(_main(args.series_points))


if __name__ == "__main__":
    main()
