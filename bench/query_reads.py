"""Latency of the query service on big data: ``python -m bench.query_reads --admin-dsn DSN``.

Creates (once) a database ``query_bench_N`` next to the admin DSN with one run
holding a 1,000,000-point float series and an experiment of 10,000 runs with 5
metrics each, their points in ``point_chunks`` rows of N = ``--chunk-points``
points (as ingest writes them, one row per series per flush), serves the app
in-process on a free port, and prints the median of repeated requests over
real HTTP:

* a 1M-point series downsampled to 2,000 points, each request a range the
  answer cache has not seen (cold), and repeated (from the cache keyed by the
  run's data version);
* the same series in full, and ``get_metrics`` of that run;
* the first page of the 10,000 runs with their latest metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import numpy as np
import numpy.typing as npt
from aiohttp import web

from ingest._partitions import utc_day
from ops.stack import free_port
from query._app import create_app
from runstream.chunks import CHUNK_COLUMNS, encode_chunk
from runstream.config import Settings
from runstream.dsn import with_database
from runstream.schema import migrate

BIG_RUN = uuid.UUID(int=1)
RUNS = 10_000
POINTS = 1_000_000


async def _seed(dsn: str, chunk_points: int) -> None:
    await migrate(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT count(*) FROM runs") >= RUNS + 1:
            return
        # One transaction: an interrupted seed leaves nothing behind to trip the next one.
        async with conn.transaction():
            big_exp = await conn.fetchval("INSERT INTO experiments (name) VALUES ('bench-big') RETURNING id")
            many_exp = await conn.fetchval("INSERT INTO experiments (name) VALUES ('bench-many') RETURNING id")
            now = datetime.now(UTC)
            await conn.execute(
                "INSERT INTO runs (id, experiment_id, status, created_at) VALUES ($1, $2, 'Completed', $3)",
                BIG_RUN,
                big_exp,
                now,
            )
            series_id = await conn.fetchval(
                "INSERT INTO series (run_id, name, kind, value_type)"
                " VALUES ($1, 'big', 'scalar', 'float') RETURNING id",
                BIG_RUN,
            )
            steps = np.arange(POINTS)
            times = 1.7e9 + steps * 0.01
            values = np.sin(steps / 5000) + (steps % 97) / 970
            day = utc_day()
            await conn.fetchval("SELECT runstream_point_partition($1)", day)
            await _store(conn, [series_id], steps, times, values, chunk_points=chunk_points, day=day)
            runs = [(uuid.uuid4(), many_exp, "Completed", now - timedelta(seconds=i)) for i in range(RUNS)]
            await conn.copy_records_to_table(
                "runs", columns=["id", "experiment_id", "status", "created_at"], records=runs
            )
            names = ["loss", "accuracy", "lr", "epoch", "grad_norm"]
            series = [(run[0], name, "scalar", "float") for run in runs for name in names]
            await conn.copy_records_to_table("series", columns=["run_id", "name", "kind", "value_type"], records=series)
            steps = np.arange(10)
            times, values = 1.7e9 + steps, steps / 10
            ids = [r["id"] for r in await conn.fetch("SELECT id FROM series WHERE run_id <> $1", BIG_RUN)]
            await _store(conn, ids, steps, times, values, chunk_points=chunk_points, day=day)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def _store(
    conn: asyncpg.Connection,
    series_ids: list[int],
    steps: npt.NDArray[Any],
    times: npt.NDArray[Any],
    values: npt.NDArray[Any],
    *,
    chunk_points: int,
    day: int,
) -> None:
    """These points in each series, as ingest stores them on ``day``: chunks and the series' summary.

    A ``point_chunks`` row per ``chunk_points``; ordinals equal steps, as from
    one producer session; the summary of migrations 0002 and 0004.
    """
    columns = (steps, times, steps, values)
    await conn.copy_records_to_table(
        "point_chunks",
        columns=(*CHUNK_COLUMNS, "stored_day"),
        records=(
            (*encode_chunk(series_id, *(column[i : i + chunk_points].tolist() for column in columns)), day)
            for series_id in series_ids
            for i in range(0, len(steps), chunk_points)
        ),
    )
    await conn.execute(
        "UPDATE series SET point_count = $1, min_value = $2, max_value = $3, max_step = $4, last_step = $4,"
        " last_time = $5, last_ordinal = $4, last_value = $6, first_time = $7, first_day = $8, last_day = $8"
        " WHERE id = ANY($9::bigint[])",
        len(steps),
        float(values.min()),
        float(values.max()),
        int(steps[-1]),
        float(times[-1]),
        float(values[-1]),
        float(times[0]),
        day,
        series_ids,
    )


async def _time(client: aiohttp.ClientSession, urls: list[str]) -> tuple[float, int]:
    samples = []
    size = 0
    for url in urls:
        start = time.perf_counter()
        async with client.get(url) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{url}: {resp.status} {body[:200]!r}")
        samples.append((time.perf_counter() - start) * 1000)
        size = len(body)
    return statistics.median(samples), size


async def main(admin_dsn: str, artifacts: Path, chunk_points: int) -> None:
    database = f"query_bench_{chunk_points}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
            # An identifier cannot be a parameter; this one is built from an int.
            await admin.execute(f"CREATE DATABASE {database}")
    finally:
        await admin.close()
    dsn = with_database(admin_dsn, database)
    started = time.perf_counter()
    await _seed(dsn, chunk_points)
    print(f"seeded in {time.perf_counter() - started:.1f} s")
    settings = Settings(database_url=dsn, artifacts_dir=artifacts)
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as client:
            series = f"{base}/api/runs/{BIG_RUN}/series?name=big"
            # A range past the last step is the whole series under a key the answer cache has not seen.
            unseen = POINTS + int(time.time())
            cases = [
                ("1M points -> 2,000, cold", [f"{series}&max_points=2000&end_step={unseen + k}" for k in range(5)]),
                ("1M points -> 2,000, warm", [f"{series}&max_points=2000"] * 20),
                ("1M points in full", [f"{series}&limit={POINTS}"] * 5),
                ("get_metrics, 1M points", [f"{base}/api/runs/{BIG_RUN}/metrics"] * 5),
                (
                    "10,000 runs: first page + latest metrics",
                    [f"{base}/api/runs?experiment=bench-many&include=metrics"] * 20,
                ),
                (
                    "10,000 runs: where loss>0.5, by -max(loss)",
                    [f"{base}/api/runs?experiment=bench-many&include=metrics&where=loss%3E0.5&sort=-max(loss)"] * 20,
                ),
            ]
            # Warm the pool and the pages PostgreSQL reads, not the answer cache.
            await _time(client, [f"{series}&max_points=2000&start_step=0"])
            for label, urls in cases:
                median, size = await _time(client, urls)
                print(f"{label:45s} median {median:8.1f} ms  ({len(urls)} requests, {size:,} bytes)")
            # Other work on the machine stretches every figure; this says how busy it was.
            print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--admin-dsn",
        default=with_database(Settings.from_env().database_url, "postgres"),
        help="a DSN on the server where query_bench_N may be created (default: RUNSTREAM_* settings' server)",
    )
    parser.add_argument(
        "--chunk-points",
        type=int,
        default=1_000,
        help="points per point_chunks row (ingest writes one row per series per flush: often 50-5,000)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="query-bench-") as artifacts:
        asyncio.run(main(args.admin_dsn, Path(artifacts), args.chunk_points))
