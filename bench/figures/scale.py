"""7. Scale: many concurrent runs, many partitions and workers, and how cost grows with a run's size.

- 1,000 concurrent runs x 20 metrics (many small batches, the realistic case)
  from 4 producer processes into one worker;
- the topic at 48 partitions with 4 producer processes and 4 workers;
- one run of 20 metrics holding 10^5, 10^6 and 10^7 points: end-to-end
  points/s should stay flat as the run grows, and so should reading one of
  its metrics in full (points/s) and downsampled (time), through the query
  service once every point is committed.
Each is the throughput measurement of figure 2 (fresh database, topic and group per run).
Not run in QUICK mode.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from bench.context import Context
from bench.figures.reads import read_downsampled, read_full_series
from bench.figures.throughput import runstream_once
from bench.rows import Row
from bench.services import Sandbox
from bench.stats import Stats

TITLE = "7. scale"
_READ_METRIC = "metric_00"  # the producer's first metric (bench/workers/rs_producer.py)


async def _reps(ctx: Context, label: str, once: Callable[[], Awaitable[dict[str, Any]]]) -> list[dict[str, Any]]:
    results = []
    for rep in range(ctx.sizes.reps):
        ctx.progress(f"  rep {rep + 1}/{ctx.sizes.reps}: {label}")
        result = await once()
        line = f"    {result['points_per_second']:,.0f} points/s"
        if reads := result.get("reads"):
            line += f"; {reads['metric_points']:,} points of one metric read in {reads['full_seconds'] * 1000:.1f} ms"
        ctx.progress(line)
        results.append(result)
    return results


async def _reads(base: str) -> dict[str, Any]:
    """One metric of the bench's only run, read in full and downsampled, each after an untimed warm-up."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        async with session.get(f"{base}/api/runs", params={"experiment": "bench-throughput"}) as resp:
            (run,) = (await resp.json())["runs"]
        await read_full_series(session, base, run["id"], _READ_METRIC)
        full_seconds, count = await read_full_series(session, base, run["id"], _READ_METRIC)
        await read_downsampled(session, base, run["id"], 2100, _READ_METRIC)
        downsampled_seconds, _ = await read_downsampled(session, base, run["id"], 2000, _READ_METRIC)
    return {"metric_points": count, "full_seconds": full_seconds, "downsampled_seconds": downsampled_seconds}


async def _growth_once(ctx: Context, points: int) -> dict[str, Any]:
    """The P=1 W=1 measurement of one run, then reads of one of its metrics, in a sandbox with a query service."""
    async with Sandbox(ctx.infra, "growth") as sandbox:
        await sandbox.start_ingest(1)
        result = await runstream_once(ctx, 1, 1, points, sandbox, runs=1)
        result["reads"] = await _reads(await sandbox.start_query())
    return result


async def run(ctx: Context) -> list[Row]:
    s = ctx.sizes
    plans = [
        (
            "scale_1000_runs",
            f"{TITLE}: 1,000 concurrent runs × 20 metrics, P=4, W=1, {s.scaling_points:,} points",
            {"producers": 4, "workers": 1, "points": s.scaling_points, "runs": 1000},
        ),
        (
            "scale_48_partitions",
            f"{TITLE}: 48 partitions, P=4, W=4, {s.scaling_points:,} points",
            {"producers": 4, "workers": 4, "points": s.scaling_points, "partitions": 48},
        ),
    ]
    rows = []
    for key, figure, kwargs in plans:
        row = Row(key=key, figure=figure, unit="points/s")
        rows.append(row)
        if ctx.quick:
            row.missing = "not run in QUICK mode"
            continue
        if gone := ctx.lacks("producer", "ingest"):
            row.missing = gone
            continue
        results = await _reps(ctx, figure, functools.partial(runstream_once, ctx, **kwargs))  # type: ignore[arg-type]
        row.runstream = Stats.of(r["points_per_second"] for r in results)
        row.details["runs"] = results
    if rows:
        rows[0].note = (
            "each producer process opens 250 runs (one sender thread and Kafka producer serve all of them) "
            "and logs every metric of every run once per step."
        )
    for n in s.growth_points:
        label = f"{TITLE}: one run of 20 metrics, {n:,} points"
        write = Row(key=f"scale_run_{n}", figure=f"{label} (P=1, W=1)", unit="points/s")
        full = Row(key=f"scale_run_{n}_read", figure=f"{label}: one metric read in full", unit="points/s")
        downsampled = Row(key=f"scale_run_{n}_downsampled", figure=f"{label}: one metric downsampled", unit="s")
        group = [write, full, downsampled]
        rows += group
        gone = "not run in QUICK mode" if ctx.quick else ctx.lacks("producer", "ingest", "query")
        if gone:
            for row in group:
                row.missing = gone
            continue
        results = await _reps(ctx, label, functools.partial(_growth_once, ctx, n))
        reads = [r["reads"] for r in results]
        write.runstream = Stats.of(r["points_per_second"] for r in results)
        full.runstream = Stats.of(r["metric_points"] / r["full_seconds"] for r in reads)
        downsampled.runstream = Stats.of(r["downsampled_seconds"] for r in reads)
        write.details["runs"] = results
    if s.growth_points:
        rows[-3].note = (
            "growth: a single run of 20 metrics; flat points/s = cost per point independent of size. Its first "
            "metric (a twentieth of the points) is then read through the query service: in full (points/s) and "
            "downsampled to 2,000 points (time)."
        )
    return rows
