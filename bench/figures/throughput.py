"""2. End-to-end ingest throughput, 4. storage, 8. ingest worker memory.

runstream: P producer processes (multiprocessing) log N points over 100 runs x
20 metrics; W ``python -m ingest`` workers write them; the clock runs from the
barrier that releases the first ``run.log`` to the moment every point is
committed in PostgreSQL (see :func:`bench.points.wait_committed`). Each
measurement gets a fresh database, topic and consumer group.

Baselines, interleaved with the P=1 W=1 runs: MLflow ``log_batch`` (1,000
metrics per call, 4 client threads) to its server on the same PostgreSQL, and
raw asyncpg binary COPY of the same rows into an unindexed table (the floor).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from typing import Any

import asyncpg

from bench.context import Context
from bench.points import count_points, point_bytes, wait_committed
from bench.proc import WorkerError, next_message, run_worker
from bench.rows import Bar, Row
from bench.services import Sandbox
from bench.stats import Stats
from bench.workers.rs_producer import produce

TITLE = "2. end-to-end ingest throughput"
MB = 1024 * 1024


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def runstream_once(
    ctx: Context,
    producers: int,
    workers: int,
    points: int,
    sandbox: Sandbox | None = None,
    *,
    runs: int | None = None,
    partitions: int = 12,
    dicts: bool = False,
) -> dict[str, Any]:
    """One measurement in a fresh sandbox (or the given one, already running its workers).

    ``dicts``: the producers log each run's metrics of a step with one ``run.log_metrics``.
    """
    runs = runs or ctx.sizes.throughput_runs
    if sandbox is not None:
        return await _measure(ctx, sandbox, producers, points, runs, dicts)
    async with Sandbox(ctx.infra, "tput", partitions=partitions) as fresh:
        await fresh.start_ingest(workers)
        return await _measure(ctx, fresh, producers, points, runs, dicts)


async def _measure(
    ctx: Context, sandbox: Sandbox, producers: int, points: int, total_runs: int, dicts: bool
) -> dict[str, Any]:
    s = ctx.sizes
    steps = max(1, points // (total_runs * s.throughput_metrics))
    points = steps * total_runs * s.throughput_metrics
    mp = multiprocessing.get_context("spawn")
    ready, queue = mp.Barrier(producers + 1), mp.Queue()
    procs = [
        mp.Process(
            target=produce,
            args=(
                sandbox.settings.as_env(),
                "bench-throughput",
                runs,
                s.throughput_metrics,
                steps,
                ready,
                queue,
                dicts,
            ),
            daemon=True,
        )
        for runs in _split(total_runs, producers)
    ]
    for proc in procs:
        proc.start()
    await asyncio.to_thread(ready.wait, 300)
    released = time.time()
    reports = [await next_message(queue, procs, "producers") for _ in procs]
    for proc in procs:
        await asyncio.to_thread(proc.join, 60)
    run_ids = [r for rep in reports for r in rep["run_ids"]]
    conn = await asyncpg.connect(sandbox.settings.database_url)
    try:
        done_at, found = await wait_committed(
            conn,
            cluster=sandbox.settings,
            topic=sandbox.settings.topic,
            run_ids=run_ids,
            expected_points=points,
            timeout_seconds=max(120.0, points / 20_000),
        )
        stored = await point_bytes(conn)
        total = await count_points(conn)
    finally:
        await conn.close()
    sandbox.check_alive()
    return {
        "points": points,
        "found": found,
        "seconds": done_at - released,
        "points_per_second": points / (done_at - released),
        "log_seconds": max(r["logged"] for r in reports) - released,
        "flush_seconds": max(r["flushed"] for r in reports) - released,
        "bytes_per_point": stored / total if total else None,
        "point_bytes": stored,
        "worker_peak_rss_mb": [rss / MB for rss in sandbox.worker_peak_rss()],
        "producer_peak_rss_mb": [r["peak_rss_bytes"] / MB for r in reports],
        "producer_stats": reports[0]["stats"],
    }


async def _runstream_reps(ctx: Context, *, dicts: bool = False) -> list[dict[str, Any]]:
    """P=1 W=1: a fresh database, topic and worker per run; QUICK shares one to save the start-up."""
    s, results = ctx.sizes, []
    how = "run.log_metrics" if dicts else "run.log"
    shared: Sandbox | None = None
    if ctx.quick:
        shared = await Sandbox(ctx.infra, "tput").__aenter__()
        await shared.start_ingest(1)
    try:
        for rep in range(s.reps):
            ctx.progress(f"  rep {rep + 1}/{s.reps}: runstream P=1 W=1, {s.throughput_points:,} points, {how}")
            results.append(await runstream_once(ctx, 1, 1, s.throughput_points, shared, dicts=dicts))
            ctx.progress(f"    {results[-1]['points_per_second']:,.0f} points/s")
    finally:
        if shared is not None:
            await shared.close()
    return results


async def copy_floor(ctx: Context, points: int) -> list[dict[str, Any]]:
    name = f"bench_copy_{time.time_ns() % 10**9}"
    dsn = await ctx.infra.create_database(name)
    try:
        params = {"dsn": dsn, "points": points, "reps": ctx.sizes.reps, "superuser_dsn": ctx.infra.superuser_dsn}
        result = await asyncio.to_thread(run_worker, "copy_floor", params, log_dir=ctx.log_dir)
        return list(result["runs"])
    finally:
        await ctx.infra.drop_database(name)


async def mlflow_log_batch(ctx: Context) -> list[dict[str, Any]]:
    result = await ctx.mlflow_worker(
        "mlflow_log_batch",
        batches=ctx.sizes.mlflow_batches,
        runs=ctx.sizes.throughput_runs,
        metrics=ctx.sizes.throughput_metrics,
        threads=4,
    )
    return list(result["runs"])


def _rows() -> dict[str, Row]:
    return {
        "vs_mlflow": Row(
            key="throughput_p1_w1_vs_mlflow",
            figure=TITLE + " (P=1, W=1)",
            unit="points/s",
            baseline_name="MLflow log_batch (1,000/call, 4 threads)",
            bars=[Bar("ratio", 100, "≥ 100×")],  # its rate's bar (issue 18: 1.2M/s) is on the row below
        ),
        "vs_copy": Row(
            key="throughput_p1_w1_vs_copy",
            figure=TITLE + " (P=1, W=1) vs storage floor",
            unit="points/s",
            baseline_name="asyncpg binary COPY, unindexed table, 1 connection",
            ratio_kind="fraction",
            bars=[Bar("min", 1_200_000, "≥ 1.2M/s"), Bar("ratio", 0.5, "≥ 50% of COPY")],
        ),
        "storage": Row(
            key="storage_bytes_per_point",
            figure="4. storage per scalar point",
            unit="bytes/point",
            baseline_name="MLflow metrics + latest_metrics",
            bars=[Bar("max", 16, "≤ 16 B")],
        ),
        "log_metrics": Row(
            key="throughput_p1_w1_log_metrics",
            figure=TITLE + " (P=1, W=1) through run.log_metrics",
            unit="values/s",
            baseline_name="asyncpg binary COPY, unindexed table, 1 connection",
            ratio_kind="fraction",
            bars=[Bar("min", 2_000_000, "≥ 2M/s")],
        ),
        "worker_rss": Row(
            key="ingest_worker_peak_rss",
            figure="8. ingest worker peak RSS under full load",
            unit="MB",
            bars=[Bar("max", 500, "≤ 500 MB")],
        ),
    }


async def run(ctx: Context) -> list[Row]:
    s = ctx.sizes
    rows = _rows()
    gone = ctx.lacks("producer", "ingest")
    ours = [] if gone else await _runstream_reps(ctx)
    dicts = [] if gone else await _runstream_reps(ctx, dicts=True)
    ctx.progress(f"  raw COPY floor, {s.throughput_points:,} rows x {s.reps}")
    floor = await copy_floor(ctx, s.throughput_points)
    ctx.progress(f"  MLflow log_batch, {s.mlflow_batches} calls x {s.reps}")
    theirs: list[dict[str, Any]] = []
    try:
        theirs = await mlflow_log_batch(ctx)
    except WorkerError as exc:
        rows["vs_mlflow"].baseline_missing = rows["storage"].baseline_missing = f"error: {str(exc)[:200]}"
        ctx.errors.append(f"throughput mlflow: {exc}")
    if theirs:
        rows["vs_mlflow"].baseline = Stats.of(r["points_per_second"] for r in theirs)
        rows["storage"].baseline = Stats.of(r["bytes_per_point"] for r in theirs)
        rows["vs_mlflow"].details["mlflow"] = theirs
    rows["vs_copy"].baseline = rows["log_metrics"].baseline = Stats.of(r["points_per_second"] for r in floor)
    rows["vs_copy"].details["copy"] = floor
    extra: list[Row] = []
    if gone:
        for row in rows.values():
            row.missing = gone
    else:
        rows["vs_mlflow"].runstream = rows["vs_copy"].runstream = Stats.of(r["points_per_second"] for r in ours)
        rows["vs_mlflow"].details["runstream"] = ours
        rows["log_metrics"].runstream = Stats.of(r["points_per_second"] for r in dicts)
        rows["log_metrics"].details["runstream"] = dicts
        rows["storage"].runstream = Stats.of(r["bytes_per_point"] for r in ours if r["bytes_per_point"])
        rows["worker_rss"].runstream = Stats.of(max(r["worker_peak_rss_mb"]) for r in ours)
        if any(r["found"] < r["points"] for r in ours + dicts):
            lost = [r["points"] - r["found"] for r in ours + dicts]
            ctx.errors.append(f"throughput: points missing after the timeout in some runs: {lost}")
        extra = await _other_configs(ctx)
    n = f"{s.throughput_points:,}"
    rows["vs_mlflow"].note = (
        f"{n} points = {s.throughput_runs} runs × {s.throughput_metrics} metrics, run.log(name, float) without "
        "step, from the barrier releasing the first log to every point committed (ingest's stored Kafka offsets "
        "reach the topic's end, then the points are counted). MLflow: "
        f"{s.mlflow_batches} log_batch calls of 1,000 metrics (one run's 20 metrics × 50 steps) over 4 threads "
        "of MlflowClient, rate = points / wall time."
    )
    rows["vs_copy"].note = (
        f"floor: the same {n} rows (series_id, step, time, value) by copy_records_to_table in chunks of 100,000, "
        "one connection, one transaction per chunk, into a table with no index; ratio = runstream / COPY."
    )
    rows["storage"].note = (
        f"pg_total_relation_size (heap, TOAST, indexes, all partitions) of every table holding points after "
        f"{n} points / points stored. MLflow: metrics + latest_metrics after its log_batch runs / rows in metrics."
    )
    rows["log_metrics"].note = (
        f"the same {n} points, runs and clock as the row above, logged as one run.log_metrics(dict.fromkeys(names, "
        "value)) per run and step (the dict built in the loop); ratio = runstream / COPY floor of this run."
    )
    rows["worker_rss"].note = "VmHWM of the ingest worker process at the end of each P=1 W=1 run."
    return [rows["vs_mlflow"], rows["vs_copy"], rows["log_metrics"], *extra, rows["storage"], rows["worker_rss"]]


async def _other_configs(ctx: Context) -> list[Row]:
    rows = []
    for producers, workers in ctx.sizes.throughput_configs[1:]:
        results = []
        for rep in range(ctx.sizes.reps):
            ctx.progress(
                f"  rep {rep + 1}/{ctx.sizes.reps}: runstream P={producers} W={workers}, "
                f"{ctx.sizes.scaling_points:,} points"
            )
            results.append(await runstream_once(ctx, producers, workers, ctx.sizes.scaling_points))
            ctx.progress(f"    {results[-1]['points_per_second']:,.0f} points/s")
        rows.append(
            Row(
                key=f"throughput_p{producers}_w{workers}",
                figure=f"{TITLE} (P={producers}, W={workers}, {ctx.sizes.scaling_points:,} points)",
                unit="points/s",
                runstream=Stats.of(r["points_per_second"] for r in results),
                details={"runstream": results},
            )
        )
    return rows
