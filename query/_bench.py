"""Latency of the query service on big data: ``python -m query._bench --admin-dsn DSN``.

Creates (once) a database ``query_bench`` next to the admin DSN with one run
holding a 1,000,000-point float series and an experiment of 10,000 runs with 5
metrics each, serves the app in-process on a free port, and prints the median
of repeated requests over real HTTP:

* a 1M-point series downsampled to 2,000 points, first request (cold) and
  repeated (from the cache keyed by the run's data version);
* the same series in full, and ``get_metrics`` of that run;
* the first page of the 10,000 runs with their latest metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import socket
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web

from ingest.schema import migrate
from runstream.config import Settings

from ._app import create_app

BIG_RUN = uuid.UUID(int=1)
RUNS = 10_000
POINTS = 1_000_000


async def _seed(dsn: str) -> None:
    await migrate(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT count(*) FROM runs") >= RUNS + 1:
            return
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
            "INSERT INTO series (run_id, name, kind, value_type) VALUES ($1, 'big', 'scalar', 'float') RETURNING id",
            BIG_RUN,
        )
        await conn.copy_records_to_table(
            "points",
            columns=["series_id", "step", "time", "ordinal", "value", "text_value"],
            records=(
                (series_id, i, 1.7e9 + i * 0.01, i, math.sin(i / 5000) + (i % 97) / 970, None) for i in range(POINTS)
            ),
        )
        runs = [(uuid.uuid4(), many_exp, "Completed", now - timedelta(seconds=i)) for i in range(RUNS)]
        await conn.copy_records_to_table("runs", columns=["id", "experiment_id", "status", "created_at"], records=runs)
        names = ["loss", "accuracy", "lr", "epoch", "grad_norm"]
        series = [(run[0], name, "scalar", "float") for run in runs for name in names]
        await conn.copy_records_to_table("series", columns=["run_id", "name", "kind", "value_type"], records=series)
        ids = await conn.fetch("SELECT id FROM series WHERE run_id <> $1", BIG_RUN)
        await conn.copy_records_to_table(
            "points",
            columns=["series_id", "step", "time", "ordinal", "value", "text_value"],
            records=((r["id"], i, 1.7e9 + i, i, i / 10, None) for r in ids for i in range(10)),
        )
        # The per-series summary ingest keeps (migration 0002), computed here in one pass.
        await conn.execute(
            """
            UPDATE series s SET point_count = a.n, min_value = a.lo, max_value = a.hi, max_step = a.max_step,
                last_step = a.last[1]::bigint, last_time = a.last[2], last_ordinal = a.last[3]::bigint,
                last_value = a.last[4]
            FROM (
                SELECT series_id, count(*) AS n, min(value) AS lo, max(value) AS hi, max(step) AS max_step,
                       (SELECT ARRAY[p2.step, p2.time, p2.ordinal, p2.value] FROM points p2
                        WHERE p2.series_id = p.series_id ORDER BY p2.time DESC, p2.ordinal DESC LIMIT 1) AS last
                FROM points p GROUP BY series_id
            ) a
            WHERE s.id = a.series_id
            """
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _time(client: aiohttp.ClientSession, url: str, repeat: int) -> tuple[float, int]:
    samples = []
    size = 0
    for _ in range(repeat):
        start = time.perf_counter()
        async with client.get(url) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{url}: {resp.status} {body[:200]!r}")
        samples.append((time.perf_counter() - start) * 1000)
        size = len(body)
    return statistics.median(samples), size


async def main(admin_dsn: str, artifacts: Path) -> None:
    admin = await asyncpg.connect(admin_dsn)
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = 'query_bench'"):
            await admin.execute("CREATE DATABASE query_bench")
    finally:
        await admin.close()
    dsn = admin_dsn.rsplit("/", 1)[0] + "/query_bench"
    started = time.perf_counter()
    await _seed(dsn)
    print(f"seeded in {time.perf_counter() - started:.1f} s")
    settings = Settings(database_url=dsn, artifacts_dir=artifacts)
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as client:
            series = f"{base}/api/runs/{BIG_RUN}/series?name=big"
            cases = [
                ("1M points -> 2,000, cold", f"{series}&max_points=2000&end_step={POINTS + int(time.time())}", 1),
                ("1M points -> 2,000, warm", f"{series}&max_points=2000", 20),
                ("1M points in full", f"{series}&limit={POINTS}", 5),
                ("get_metrics, 1M points", f"{base}/api/runs/{BIG_RUN}/metrics", 5),
                (
                    "10,000 runs: first page + latest metrics",
                    f"{base}/api/runs?experiment=bench-many&include=metrics",
                    20,
                ),
                (
                    "10,000 runs: where loss>0.5, by -max(loss)",
                    f"{base}/api/runs?experiment=bench-many&include=metrics&where=loss%3E0.5&sort=-max(loss)",
                    20,
                ),
            ]
            # Warm the pool and the pages PostgreSQL reads, not the answer cache.
            await _time(client, f"{series}&max_points=2000&end_step=1", 1)
            for label, url, repeat in cases:
                median, size = await _time(client, url, repeat)
                print(f"{label:45s} median {median:8.1f} ms  ({repeat} requests, {size:,} bytes)")
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--admin-dsn",
        default=Settings.from_env().database_url.rsplit("/", 1)[0] + "/postgres",
        help="a DSN on the server where query_bench may be created (default: RUNSTREAM_* settings' server)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="query-bench-") as artifacts:
        asyncio.run(main(args.admin_dsn, Path(artifacts)))
