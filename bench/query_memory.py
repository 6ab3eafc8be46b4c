"""The query service's memory and responsiveness under heavy reads (issue 14, "Memory").

Seeds a database of its own with 10 runs of 1,000,000 points each (one scalar
metric, ``loss``, in 10,000-point chunks as ingest writes them, with the test
suite's ``copy_chunks``), starts
``python -m query`` from a source tree (``--source``: this one by default, or
another checkout to measure the code before a change), then for each scenario
restarts the service and fires 4 identical requests in parallel while asking
``/health`` every 50 ms. It prints, per scenario: the service's RSS before and
its peak (``VmHWM``) after, the statuses, the wall time and ``/health``'s worst
latency.

    .venv/bin/python -m bench.query_memory --dsn postgresql://runstream@127.0.0.1:15432/runstream
    .venv/bin/python -m bench.query_memory --dsn ... --source /work/main --keep-db rs_memprobe

``--keep-db NAME`` keeps (and reuses, when it is already seeded) the database,
so two source trees are measured on the same data.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import numpy as np

from ingest._partitions import utc_day
from ops.stack import free_port, wait_http_ok
from runstream.dsn import with_database
from runstream.schema import migrate
from tests.support import copy_chunks

RUNS = 10
POINTS = 1_000_000
CHUNK = 10_000
PARALLEL = 4
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str  # with {runs} for the repeated run= parameters, {run} for the first run


SCENARIOS = (
    Scenario("series 10 runs, limit=1000000", "/api/series?name=loss&limit=1000000&{runs}"),
    Scenario("series 10 runs, max_points=100000", "/api/series?name=loss&max_points=100000&{runs}"),
    Scenario("series 10 runs, default limit", "/api/series?name=loss&{runs}"),
    Scenario("metrics of one 1M-point run", "/api/runs/{run}/metrics"),
)


async def _seed(dsn: str) -> list[uuid.UUID]:
    conn = await asyncpg.connect(dsn)
    try:
        found = await conn.fetch("SELECT id FROM runs ORDER BY created_at")
        if len(found) == RUNS:
            return [r["id"] for r in found]
        experiment = await conn.fetchval("INSERT INTO experiments (name) VALUES ('memory') RETURNING id")
        day = utc_day()  # the day copy_chunks stores them on
        steps = np.arange(POINTS, dtype=np.int64)
        times = 1_700_000_000.0 + steps * 0.01
        values = np.random.default_rng(7).random(POINTS)
        ids = []
        for _ in range(RUNS):
            run_id = uuid.uuid4()
            await conn.execute(
                "INSERT INTO runs (id, experiment_id, status, created_at) VALUES ($1, $2, 'Completed', now())",
                run_id,
                experiment,
            )
            series_id = await conn.fetchval(
                "INSERT INTO series (run_id, name, kind, value_type, point_count, first_day, last_day,"
                " last_step, last_time, last_ordinal, last_value, min_value, max_value, max_step, first_time)"
                " VALUES ($1, 'loss', 'scalar', 'float', $2, $3, $3, $4, $5, $4, $6, $7, $8, $4, $9) RETURNING id",
                run_id,
                POINTS,
                day,
                POINTS - 1,
                float(times[-1]),
                float(values[-1]),
                float(values.min()),
                float(values.max()),
                float(times[0]),
            )
            await copy_chunks(
                conn, series_id, steps.tolist(), times.tolist(), steps.tolist(), values.tolist(), chunk_points=CHUNK
            )
            ids.append(run_id)
        return ids
    finally:
        await conn.close()


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


async def _probe_health(session: aiohttp.ClientSession, base: str, stop: asyncio.Event) -> list[float]:
    latencies = []
    while not stop.is_set():
        started = time.monotonic()
        async with session.get(f"{base}/health") as resp:
            await resp.read()
        latencies.append(time.monotonic() - started)
        await asyncio.sleep(0.05)
    return latencies


async def _fetch(session: aiohttp.ClientSession, url: str) -> tuple[int, int, str]:
    async with session.get(url) as resp:
        body = await resp.read()
        note = body[:160].decode(errors="replace") if resp.status != 200 else ""
        return resp.status, len(body), note


async def _scenario(scenario: Scenario, env: dict[str, str], source: Path, runs: list[uuid.UUID]) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    child_env = {**env, "RUNSTREAM_QUERY_PORT": str(port), "RUNSTREAM_QUERY_URL": base, "PYTHONPATH": str(source)}
    with (Path(env["RUNSTREAM_HOME"]) / "query.log").open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "query"], env=child_env, cwd=source, stdout=log, stderr=log)
    try:
        await wait_http_ok(f"{base}/health", alive=lambda: proc.poll() is None, exited_message="query exited")
        before = _status_kb(proc.pid, "VmRSS")
        url = base + scenario.path.format(runs="&".join(f"run={r}" for r in runs), run=runs[0])
        timeout = aiohttp.ClientTimeout(total=600)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            stop = asyncio.Event()
            health = asyncio.create_task(_probe_health(session, base, stop))
            started = time.monotonic()
            answers = await asyncio.gather(*(_fetch(session, url) for _ in range(PARALLEL)))
            seconds = time.monotonic() - started
            stop.set()
            latencies = await health
        return {
            "scenario": scenario.name,
            "rss_before_mb": before / 1024,
            "rss_peak_mb": _status_kb(proc.pid, "VmHWM") / 1024,
            "statuses": [a[0] for a in answers],
            "body_mb": max(a[1] for a in answers) / 1e6,
            "seconds": seconds,
            "health_worst_ms": max(latencies) * 1000,
            "note": next((a[2] for a in answers if a[2]), ""),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", required=True, help="a DSN on a server where the user may create databases")
    parser.add_argument("--source", type=Path, default=ROOT, help="the source tree whose query service runs")
    parser.add_argument("--keep-db", help="keep (and reuse) a database of this name")
    args = parser.parse_args()
    name = args.keep_db or f"rs_memprobe_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.dsn)
    try:
        if not await admin.fetchval("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name):
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = with_database(args.dsn, name)
    home = tempfile.TemporaryDirectory(prefix=f"{name}-")  # the services' RUNSTREAM_HOME and log
    try:
        await migrate(dsn)
        runs = await _seed(dsn)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
        env |= {"RUNSTREAM_DATABASE_URL": dsn, "RUNSTREAM_HOME": home.name}
        print(f"source {args.source}; {RUNS} runs x {POINTS:,} points; {PARALLEL} parallel requests per scenario")
        print(
            f"{'scenario':38} {'RSS before':>10} {'RSS peak':>9} {'statuses':>22} {'body MB':>8} {'s':>6} "
            f"{'/health worst':>13}"
        )
        for scenario in SCENARIOS:
            r = await _scenario(scenario, env, args.source.resolve(), runs)
            print(
                f"{r['scenario']:38} {r['rss_before_mb']:8.0f}MB {r['rss_peak_mb']:7.0f}MB {r['statuses']!s:>22}"
                f" {r['body_mb']:8.1f} {r['seconds']:6.1f} {r['health_worst_ms']:11.0f}ms"
            )
            if r["note"]:
                print(f"    {r['note']}")
    finally:
        home.cleanup()
        if not args.keep_db:
            admin = await asyncpg.connect(args.dsn)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
