"""The storage floor: raw asyncpg binary COPY of point rows into an unindexed table.

One row per scalar point (series id, step, time, value), as issue 6 defines
the floor, whatever layout ingest stores; the rows are built before the clock
starts, and one connection copies them in chunks of 100,000, one transaction
per chunk.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg

from bench.workers import emit, params

CHUNK = 100_000


async def main() -> None:
    p = params()
    points = p["points"]
    conn = await asyncpg.connect(p["dsn"])
    try:
        await conn.execute(
            "CREATE TABLE floor_points (series_id bigint, step bigint, time double precision, value double precision)"
        )
        now = time.time()
        chunk = [(i % 2000, i // 2000, now + i * 1e-4, i * 0.5) for i in range(min(CHUNK, points))]
        results = []
        for _ in range(p["reps"]):
            await conn.execute("TRUNCATE floor_points")
            await _checkpoint(p.get("superuser_dsn"))  # each run starts from the same clean state
            copied = 0
            started = time.perf_counter()
            while copied < points:
                rows = chunk if points - copied >= len(chunk) else chunk[: points - copied]
                await conn.copy_records_to_table(
                    "floor_points", records=rows, columns=["series_id", "step", "time", "value"]
                )
                copied += len(rows)
            seconds = time.perf_counter() - started
            size = await conn.fetchval("SELECT pg_total_relation_size('floor_points')")
            results.append(
                {
                    "points": copied,
                    "seconds": seconds,
                    "points_per_second": copied / seconds,
                    "bytes_per_point": size / copied,
                }
            )
    finally:
        await conn.close()
    emit({"runs": results})


async def _checkpoint(dsn: str | None) -> None:
    """CHECKPOINT needs a superuser (or pg_checkpoint), which the services' role is not: the stack's own.

    Services the bench did not start (``--pg-dsn``) give none: their runs then
    start from whatever the checkpointer left, as ingest's runs do.
    """
    if dsn is None:
        return
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
