"""6. The query service under load: run status and a downsampled series, 64 concurrent connections.

The load generator is a process of its own (``bench.workers.http_load``);
run status is measured open loop at 1,000 requests/s (latency from when each
request was due) and closed loop for the most requests per second; the
downsampled series (2,000 points of a seeded series) closed loop.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from typing import Any

import aiohttp
import asyncpg

from bench.context import Context
from bench.points import wait_committed
from bench.proc import next_message, run_worker
from bench.rows import Bar, Row
from bench.services import Sandbox
from bench.stats import Stats
from bench.workers.rs_seed import seed_series

TITLE = "6. query service under load"
CONCURRENCY = 64


async def _seed(ctx: Context, sandbox: Sandbox, points: int) -> str:
    mp = multiprocessing.get_context("spawn")
    queue = mp.Queue()
    proc = mp.Process(target=seed_series, args=(sandbox.settings.as_env(), points, queue), daemon=True)
    proc.start()
    message = await next_message(queue, [proc], "seeding")
    await asyncio.to_thread(proc.join, 60)
    conn = await asyncpg.connect(sandbox.settings.database_url)
    try:
        await wait_committed(
            conn,
            cluster=sandbox.settings,
            topic=sandbox.settings.topic,
            run_ids=[message["run_id"]],
            expected_points=points,
            timeout_seconds=300,
        )
    finally:
        await conn.close()
    return str(message["run_id"])


async def _mlflow_run(ctx: Context) -> str:
    """A run in MLflow's default experiment, for the same status request against its server."""
    server = await ctx.mlflow()
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{server.url}/api/2.0/mlflow/runs/create", json={"experiment_id": "0"}) as resp,
    ):
        body = await resp.json()
    return f"{server.url}/api/2.0/mlflow/runs/get?run_id={body['run']['info']['run_id']}"


async def _load(ctx: Context, url: str, rate: int) -> list[dict[str, Any]]:
    params = {
        "url": url,
        "rate": rate,
        "seconds": ctx.sizes.load_seconds,
        "concurrency": CONCURRENCY,
        "reps": ctx.sizes.reps,
    }
    result = await asyncio.to_thread(run_worker, "http_load", params, log_dir=ctx.log_dir)
    return list(result["runs"])


async def run(ctx: Context) -> list[Row]:
    s = ctx.sizes
    status_p99 = Row(
        key="load_status_p99",
        figure=f"{TITLE}: run status p99 at 1,000 requests/s, {CONCURRENCY} connections",
        unit="s",
        bars=[Bar("max", 0.05, "≤ 50 ms")],
        baseline_name="MLflow runs/get, same load",
    )
    status_max = Row(
        key="load_status_max",
        figure=f"{TITLE}: run status, most requests/s ({CONCURRENCY} clients)",
        unit="requests/s",
        baseline_name="MLflow runs/get",
    )
    series_max = Row(
        key="load_series_max",
        figure=f"{TITLE}: series downsampled to 2,000 of {s.load_series_points:,} points, "
        f"most requests/s ({CONCURRENCY} clients)",
        unit="requests/s",
    )
    rows = [status_p99, status_max, series_max]
    ctx.progress("  MLflow runs/get, open loop at 1,000 requests/s, then closed loop")
    mlflow_url = await _mlflow_run(ctx)
    theirs = await _load(ctx, mlflow_url, 1000)
    status_p99.baseline = Stats.of(r["p99"] for r in theirs)
    status_p99.details["mlflow"] = theirs
    theirs = await _load(ctx, mlflow_url, 0)
    status_max.baseline = Stats.of(r["requests_per_second"] for r in theirs)
    status_max.details["mlflow"] = theirs
    if gone := ctx.lacks("producer", "ingest", "query"):
        for row in rows:
            row.missing = gone
        return rows
    async with Sandbox(ctx.infra, "load") as sandbox:
        await sandbox.start_ingest(1)
        base = await sandbox.start_query()
        run_id = await _seed(ctx, sandbox, s.load_series_points)
        ctx.progress("  run status, open loop at 1,000 requests/s")
        runs = await _load(ctx, f"{base}/api/runs/{run_id}", 1000)
        status_p99.runstream = Stats.of(r["p99"] for r in runs)
        status_p99.details["runs"] = runs
        ctx.progress("  run status, closed loop")
        runs = await _load(ctx, f"{base}/api/runs/{run_id}", 0)
        status_max.runstream = Stats.of(r["requests_per_second"] for r in runs)
        status_max.details["runs"] = runs
        ctx.progress("  downsampled series, closed loop")
        runs = await _load(ctx, f"{base}/api/runs/{run_id}/series?name=series&max_points=2000", 0)
        series_max.runstream = Stats.of(r["requests_per_second"] for r in runs)
        series_max.details["runs"] = runs
        sandbox.check_alive()
    status_p99.note = (
        f"open loop, {s.load_seconds:g} s per run: requests due every 1 ms over up to {CONCURRENCY} connections, "
        "latency from the moment each was due; the load generator is an aiohttp process on the same 2 cores."
    )
    status_max.note = (
        "closed loop: 64 clients back to back; p50/p99 in the JSON details. Baseline: the same generator against "
        "MLflow's GET /api/2.0/mlflow/runs/get (server --workers 1)."
    )
    series_max.note = "closed loop; the same request each time, so the service's downsampling cache may answer."
    return rows
