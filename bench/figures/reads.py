"""5. Reads through the query service, and MLflow's ``get_metric_history`` of the same series.

Seeded through the SDK (one run with one metric of N points; one run with 50
metrics x 20,000 points) and, for the runs list, thousands of small runs
published in runstream's event format; timed once everything is committed.
HTTP figures time the request until the whole body is received (JSON
decoding on the client is not counted); every figure follows an untimed
warm-up request.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from typing import Any

import aiohttp
import asyncpg
import orjson

from bench.context import Context
from bench.points import wait_committed
from bench.proc import WorkerError, next_message
from bench.rows import Bar, Row
from bench.seed_runs import publish_runs
from bench.services import Sandbox
from bench.stats import Stats
from bench.workers.rs_seed import seed_and_read

TITLE = "5. reads"
RUNS_EXPERIMENT = "bench-runs-list"


async def _timed_get(session: aiohttp.ClientSession, url: str, params: dict[str, Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    async with session.get(url, params={k: str(v) for k, v in params.items()}) as resp:
        body = await resp.read()
        seconds = time.perf_counter() - started
        if resp.status != 200:
            raise RuntimeError(f"GET {url} {params} -> {resp.status}: {body[:300]!r}")
    return seconds, orjson.loads(body)


async def read_full_series(
    session: aiohttp.ClientSession, base: str, run_id: str, name: str = "series"
) -> tuple[float, int]:
    """Seconds to read every point (all keyset pages, as large as the service allows) and how many came."""
    url = f"{base}/api/runs/{run_id}/series"
    params: dict[str, Any] = {"name": name, "limit": 1_000_000}
    total_seconds, count = 0.0, 0
    while True:
        seconds, body = await _timed_get(session, url, params)
        total_seconds += seconds
        count += len(body["steps"])
        if not body.get("next_cursor"):
            return total_seconds, count
        params["cursor"] = body["next_cursor"]


async def read_downsampled(
    session: aiohttp.ClientSession, base: str, run_id: str, max_points: int, name: str = "series"
) -> tuple[float, int]:
    seconds, body = await _timed_get(
        session, f"{base}/api/runs/{run_id}/series", {"name": name, "max_points": max_points}
    )
    return seconds, len(body["steps"])


async def _runs_page(session: aiohttp.ClientSession, base: str) -> tuple[float, int]:
    seconds, body = await _timed_get(session, f"{base}/api/runs", {"experiment": RUNS_EXPERIMENT, "include": "metrics"})
    return seconds, len(body["runs"])


async def _http_figures(ctx: Context, base: str, series_run: str) -> dict[str, Any]:
    reps, n = ctx.sizes.reps, ctx.sizes.read_series_points
    out: dict[str, Any] = {"full": [], "downsampled_cold": [], "downsampled_cached": [], "runs_page": []}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        # The first read of all is the only one that decodes from PostgreSQL: the service then holds the
        # series decoded (query/_decoded.py). One sample, kept in the details.
        out["downsampled_first"] = (await read_downsampled(session, base, series_run, 2100))[0]
        await read_full_series(session, base, series_run)
        for _ in range(reps):
            seconds, count = await read_full_series(session, base, series_run)
            if count != n:
                raise RuntimeError(f"full read returned {count} of {n} points")
            out["full"].append(seconds)
        await read_downsampled(session, base, series_run, 2100)
        for rep in range(reps):  # a different size each time: no answer comes from the service's cache
            seconds, count = await read_downsampled(session, base, series_run, 2000 - 2 * rep)
            out["downsampled_cold"].append(seconds)
            out["downsampled_points"] = count
        for _ in range(reps):
            out["downsampled_cached"].append((await read_downsampled(session, base, series_run, 2000))[0])
        await _runs_page(session, base)
        for _ in range(reps):
            seconds, out["runs_page_size"] = await _runs_page(session, base)
            out["runs_page"].append(seconds)
    return out


async def _seed(ctx: Context, sandbox: Sandbox) -> tuple[dict[str, Any], Any, Any, Any]:
    s = ctx.sizes
    mp = multiprocessing.get_context("spawn")
    queue, go = mp.Queue(), mp.Queue()
    proc = mp.Process(
        target=seed_and_read,
        args=(
            sandbox.settings.as_env(),
            s.read_series_points,
            s.get_metrics_metrics,
            s.get_metrics_points,
            s.reps,
            queue,
            go,
        ),
        daemon=True,
    )
    proc.start()
    ctx.progress(f"  seeding {s.runs_list_runs:,} small runs in the event format")
    await publish_runs(sandbox.settings, RUNS_EXPERIMENT, s.runs_list_runs)
    ctx.progress(
        f"  seeding a {s.read_series_points:,}-point series and {s.get_metrics_metrics} x "
        f"{s.get_metrics_points:,} points through the SDK"
    )
    seeded = await next_message(queue, [proc], "seeding process")
    conn = await asyncpg.connect(sandbox.settings.database_url)
    try:
        expected = s.read_series_points + seeded["wide_points"]
        _, found = await wait_committed(
            conn,
            cluster=sandbox.settings,
            topic=sandbox.settings.topic,
            run_ids=[seeded["series_run"], seeded["wide_run"]],
            expected_points=expected,
            timeout_seconds=600,
        )
        if found < expected:
            raise RuntimeError(f"only {found} of {expected} seeded points were stored")
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return seeded, proc, queue, go


def _rows(ctx: Context) -> dict[str, Row]:
    s = ctx.sizes
    quick = " (QUICK size)" if ctx.quick else ""
    return {
        "full": Row(
            key="read_full_series",
            figure=f"5. read a {s.read_series_points:,}-point series in full{quick}",
            unit="s",
            baseline_name="MLflow get_metric_history",
            bars=[Bar("max", 0.1, "≤ 100 ms")],
        ),
        "down": Row(
            key="read_downsampled",
            figure=f"5. the same series downsampled to 2,000 points{quick}",
            unit="s",
            bars=[Bar("max", 0.02, "≤ 20 ms")],
        ),
        "get_metrics": Row(
            key="read_get_metrics",
            figure=f"5. run.get_metrics(), {s.get_metrics_metrics} metrics × {s.get_metrics_points:,} points{quick}",
            unit="s",
        ),
        "runs": Row(
            key="read_runs_list",
            figure=f"5. runs list, first page with latest metrics, {s.runs_list_runs:,} runs{quick}",
            unit="s",
            bars=[Bar("max", 0.1, "≤ 100 ms")],
        ),
    }


async def run(ctx: Context) -> list[Row]:
    rows = _rows(ctx)
    ctx.progress(f"  MLflow get_metric_history of a {ctx.sizes.read_series_points:,}-point series")
    try:
        mlflow = await ctx.mlflow_worker("mlflow_history", points=ctx.sizes.read_series_points, timeout_seconds=1800)
        rows["full"].baseline = Stats.of(mlflow["seconds"])
    except WorkerError as exc:
        rows["full"].baseline_missing = f"error: {str(exc)[:200]}"
        ctx.errors.append(f"reads mlflow: {exc}")
    if gone := ctx.lacks("producer", "ingest", "query"):
        for row in rows.values():
            row.missing = gone
        return list(rows.values())
    async with Sandbox(ctx.infra, "reads") as sandbox:
        await sandbox.start_ingest(1)
        await sandbox.start_query()
        seeded, proc, queue, go = await _seed(ctx, sandbox)
        ctx.progress("  timing reads")
        http = await _http_figures(ctx, sandbox.settings.query_url, seeded["series_run"])
        go.put("go")
        get_metrics = (await next_message(queue, [proc], "seeding process"))["get_metrics_seconds"]
        await asyncio.to_thread(proc.join, 60)
        sandbox.check_alive()
    rows["full"].runstream = Stats.of(http["full"])
    rows["down"].runstream = Stats.of(http["downsampled_cold"])
    rows["down"].details = {
        "cached_seconds": http["downsampled_cached"],
        "points_returned": http.get("downsampled_points"),
        "first_read_seconds": http["downsampled_first"],
    }
    rows["get_metrics"].runstream = Stats.of(get_metrics)
    rows["runs"].runstream = Stats.of(http["runs_page"])
    rows["runs"].details = {"page_size": http.get("runs_page_size")}
    rows["full"].note = (
        "GET /api/runs/{id}/series?name=series&limit=1000000 (following next_cursor if any) until the body is "
        "received, after an untimed warm-up read (from then on the service holds the series decoded: the "
        "time is slicing and JSON). MLflow: MlflowClient.get_metric_history of the same number of points, "
        "written into its metrics table with COPY beforehand."
    )
    rows["down"].note = (
        "GET ...&max_points=2000-2k (a different size each time, so the service's answer cache never answers; "
        "the cached figure is in the JSON details). The series is held decoded by then (query/_decoded.py): "
        "the very first read, which fetches and decodes it from PostgreSQL, is first_read_seconds in the details."
    )
    rows[
        "get_metrics"
    ].note = "the SDK's run.get_metrics() (HTTP + decoding into Azure's shapes), timed in the SDK's process."
    rows[
        "runs"
    ].note = "GET /api/runs?experiment=...&include=metrics (default page size), runs seeded in the event format."
    return list(rows.values())
