"""12. Many live series: 1,000 runs x 100 metrics at 1 point per series per second, and how cost grows with series.

Live: ``series_runs`` runs x ``series_metrics`` metrics, each series logged at
1 point/s from 4 producer processes (:mod:`bench.workers.rs_series`) for
``series_seconds``, into ``series_workers`` ingest workers and a query
service. It reports:

- keeping up: seconds from the end of logging until every point is committed;
- freshness: p99 of a probe's delay to the query service (as figure 3);
- chunks per 1,000 points of the series' points older than
  ``series_old_seconds`` when logging ends, in the worst series: each series'
  chunks holding such points over ceil(their points / 1,000), after the
  workers' own compaction (``RUNSTREAM_COMPACTION_AGE_SECONDS`` =
  ``series_compaction_age_seconds``);
- worker peak RSS; PostgreSQL WAL bytes per point (``pg_current_wal_lsn``
  before and after, the whole cluster); storage per point; the workers' CPU
  per point (user + system, compaction included);
- compaction throughput from the workers' counters: series and points merged
  per second of compaction.

Growth: the same load at a fixed total rate (``growth_rate`` points/s) over
10 ... 100k series (``growth_series``), one worker, each step in a fresh
sandbox: worker CPU per point, and storage per point once compaction has
merged what is due. One measurement per size (a 10-minute load five times
over would not fit the suite); the JSON keeps every value.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import multiprocessing
import re
import time
from typing import Any

import aiohttp
import asyncpg

from bench.context import Context
from bench.figures.freshness import poll_probes
from bench.points import point_bytes, wait_committed
from bench.proc import cpu_seconds, next_message
from bench.rows import Bar, Row
from bench.services import Sandbox
from bench.stats import Stats, percentile
from bench.workers.rs_series import live

TITLE = "12. many live series"
PROBE_INTERVAL = 0.02
MB = 1024 * 1024
_COUNTER = re.compile(r"^runstream_ingest_(compacted_series|compacted_points|compaction_seconds)_total (\S+)$", re.M)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Load:
    runs: int
    metrics: int
    rate_per_series: float
    seconds: float
    producers: int
    workers: int
    compaction_age_seconds: float
    old_seconds: float
    probe: bool = True

    @property
    def series(self) -> int:
        return self.runs * self.metrics


async def _counters(session: aiohttp.ClientSession, urls: list[str]) -> dict[str, float]:
    """The workers' compaction counters, summed."""
    total: dict[str, float] = {}
    for url in urls:
        async with session.get(url) as resp:
            for name, value in _COUNTER.findall(await resp.text()):
                total[name] = total.get(name, 0.0) + float(value)
    return total


async def _wal(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))


def _cpu(sandbox: Sandbox) -> float:
    return sum(cpu_seconds(w.pid) or 0.0 for w in sandbox.workers)


async def _old_chunks(conn: asyncpg.Connection, cutoff: float) -> dict[str, float]:
    """Per series, its chunks holding points older than ``cutoff`` over ceil(their points / 1,000): worst and mean."""
    row = await conn.fetchrow(
        "SELECT max(chunks / ceil(points / 1000.0)) AS worst, sum(chunks) AS chunks, sum(points) AS points,"
        " count(*) AS series FROM (SELECT series_id, count(*)::float8 AS chunks, sum(n)::float8 AS points"
        " FROM point_chunks WHERE time_start < $1 GROUP BY series_id) x",
        cutoff,
    )
    return {k: float(row[k] or 0) for k in ("worst", "chunks", "points", "series")}


async def _settled(conn: asyncpg.Connection, age: float, timeout_seconds: float) -> float:
    """Wait until compaction has merged every series due; return how long it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_seconds:
        due = await conn.fetchval("SELECT count(*) FROM series WHERE small_chunks >= 2")
        if due == 0:
            break
        await asyncio.sleep(1.0)
    return time.monotonic() - started


async def measure(ctx: Context, load: Load, *, settle: bool = False) -> dict[str, Any]:
    """One measurement of ``load`` in a fresh sandbox."""
    async with Sandbox(ctx.infra, "series") as sandbox:
        sandbox.settings = dataclasses.replace(sandbox.settings, compaction_age_seconds=load.compaction_age_seconds)
        await sandbox.start_ingest(load.workers)
        if load.probe:
            await sandbox.start_query()
        conn = await asyncpg.connect(sandbox.settings.database_url)
        try:
            return await _measure(ctx, sandbox, conn, load, settle=settle)
        finally:
            await conn.close()


async def _measure(
    ctx: Context, sandbox: Sandbox, conn: asyncpg.Connection, load: Load, *, settle: bool
) -> dict[str, Any]:
    mp = multiprocessing.get_context("spawn")
    ready, queue = mp.Barrier(load.producers + 1), mp.Queue()
    share = [load.runs // load.producers + (i < load.runs % load.producers) for i in range(load.producers)]
    procs = [
        mp.Process(
            target=live,
            args=(
                sandbox.settings.as_env(),
                runs,
                load.metrics,
                load.rate_per_series,
                load.seconds,
                PROBE_INTERVAL if load.probe and i == 0 else 0.0,
                ready,
                queue,
            ),
            daemon=True,
        )
        for i, runs in enumerate(share)
    ]
    for proc in procs:
        proc.start()
    probe_run = str((await next_message(queue, procs, "series producer"))["probe_run"]) if load.probe else ""
    async with aiohttp.ClientSession() as session:
        expected: list[int] = []
        poller = (
            asyncio.create_task(poll_probes(session, sandbox.settings.query_url, probe_run, expected))
            if load.probe
            else None
        )
        wal_before, cpu_before = await _wal(conn), _cpu(sandbox)
        await asyncio.to_thread(ready.wait)
        started = time.time()
        done = [await next_message(queue, procs, "series producer") for _ in procs]
        for proc in procs:
            await asyncio.to_thread(proc.join, 60)
        points = sum(d["points"] for d in done)
        logged_at = max(d["logged_at"] for d in done)
        committed_at, found = await wait_committed(
            conn,
            cluster=sandbox.settings,
            topic=sandbox.settings.topic,
            run_ids=[r for d in done for r in d["run_ids"]],
            expected_points=points,
            timeout_seconds=600,
        )
        wal_after, cpu_after = await _wal(conn), _cpu(sandbox)
        old = await _old_chunks(conn, started + load.seconds - load.old_seconds)
        delays: dict[int, float] = {}
        if poller is not None:
            expected.append(sum(d["probes"] for d in done))
            delays = await poller
        settled = (
            await _settled(conn, load.compaction_age_seconds, 3 * load.compaction_age_seconds + 60) if settle else 0
        )
        counters = await _counters(session, sandbox.worker_metrics_urls)
        stored = await point_bytes(conn)
        sandbox.check_alive()
    samples = list(delays.values()) + [math.inf] * max(0, (expected[0] if expected else 0) - len(delays))
    busy = counters.get("compaction_seconds", 0.0)
    return {
        "series": load.series,
        "points": points,
        "committed": found,
        "logged_seconds": logged_at - started,
        "catch_up_seconds": max(0.0, committed_at - logged_at),
        "freshness_p50": percentile(samples, 50) if samples else None,
        "freshness_p99": percentile(samples, 99) if samples else None,
        "probes": len(samples),
        "old_chunks": old,
        "worker_peak_rss_bytes": max(sandbox.worker_peak_rss(), default=0),
        "wal_bytes_per_point": (wal_after - wal_before) / max(points, 1),
        "cpu_us_per_point": (cpu_after - cpu_before) / max(points, 1) * 1e6,
        "storage_bytes_per_point": stored / max(found, 1),
        "settle_seconds": settled,
        "compaction": {
            **counters,
            "series_per_second": counters.get("compacted_series", 0.0) / busy if busy else None,
            "points_per_second": counters.get("compacted_points", 0.0) / busy if busy else None,
        },
    }


def _live_rows(s: Any) -> list[Row]:
    label = f"{TITLE}: {s.series_runs:,} runs × {s.series_metrics} metrics at 1 point/s, {s.series_seconds:g} s"
    return [
        Row(
            key="series_catch_up",
            figure=f"{label}: ingest keeping up (catch-up after logging)",
            unit="s",
            bars=[Bar("max", 2.0, "≤ 2 s")],
        ),
        Row(key="series_freshness_p99", figure=f"{label}: freshness p99", unit="s", bars=[Bar("max", 1.0, "≤ 1 s")]),
        Row(
            key="series_old_chunks",
            figure=f"{label}: chunks per 1,000 points older than {s.series_old_seconds:g} s, worst series",
            unit="chunks",
            bars=[Bar("max", 1.0, "≤ 1")],
        ),
        Row(
            key="series_worker_rss", figure=f"{label}: worker peak RSS", unit="MB", bars=[Bar("max", 500.0, "≤ 500 MB")]
        ),
        Row(key="series_wal", figure=f"{label}: PostgreSQL WAL per point", unit="B/point"),
        Row(key="series_storage", figure=f"{label}: storage per point", unit="B/point"),
        Row(key="series_cpu", figure=f"{label}: worker CPU per point (compaction included)", unit="µs/point"),
        Row(key="series_compaction_series", figure=f"{label}: compaction throughput", unit="series/s"),
        Row(key="series_compaction_points", figure=f"{label}: compaction throughput", unit="points/s"),
    ]


def _fill_live(rows: list[Row], results: list[dict[str, Any]]) -> None:
    catch_up, fresh, old, rss, wal, storage, cpu, c_series, c_points = rows
    catch_up.runstream = Stats.of(r["catch_up_seconds"] for r in results)
    fresh.runstream = Stats.of(r["freshness_p99"] for r in results)
    old.runstream = Stats.of(r["old_chunks"]["worst"] for r in results)
    rss.runstream = Stats.of(r["worker_peak_rss_bytes"] / MB for r in results)
    wal.runstream = Stats.of(r["wal_bytes_per_point"] for r in results)
    storage.runstream = Stats.of(r["storage_bytes_per_point"] for r in results)
    cpu.runstream = Stats.of(r["cpu_us_per_point"] for r in results)
    if all(r["compaction"]["series_per_second"] for r in results):
        c_series.runstream = Stats.of(r["compaction"]["series_per_second"] for r in results)
        c_points.runstream = Stats.of(r["compaction"]["points_per_second"] for r in results)
    else:
        c_series.missing = c_points.missing = "nothing was due for compaction"
    catch_up.details["runs"] = results


async def run(ctx: Context) -> list[Row]:
    s = ctx.sizes
    rows = _live_rows(s)
    growth = [
        (
            Row(
                key=f"series_growth_cpu_{n}",
                figure=f"{TITLE}, growth: {n:,} series: worker CPU per point",
                unit="µs/point",
            ),
            Row(
                key=f"series_growth_storage_{n}",
                figure=f"{TITLE}, growth: {n:,} series: storage per point",
                unit="B/point",
            ),
        )
        for n in s.growth_series
    ]
    flat = Row(
        key="series_growth_flat",
        figure=f"{TITLE}, growth: CPU per point at {s.growth_series[-1]:,} series over {s.growth_series[0]:,}",
        unit="×",
        bars=[Bar("max", 2.0, "≤ 2× (flat)")],
    )
    everything = rows + [r for pair in growth for r in pair] + [flat]
    if gone := ctx.lacks("producer", "ingest", "query"):
        for row in everything:
            row.missing = gone
        return everything
    load = Load(
        runs=s.series_runs,
        metrics=s.series_metrics,
        rate_per_series=1.0,
        seconds=s.series_seconds,
        producers=4,
        workers=s.series_workers,
        compaction_age_seconds=s.series_compaction_age_seconds,
        old_seconds=s.series_old_seconds,
    )
    ctx.progress(f"  live: {load.series:,} series for {load.seconds:g} s")
    result = await measure(ctx, load)
    ctx.progress(
        f"    catch-up {result['catch_up_seconds']:.2f} s, freshness p99 {result['freshness_p99']:.3f} s, "
        f"old chunks worst {result['old_chunks']['worst']:.2f}, RSS {result['worker_peak_rss_bytes'] / MB:.0f} MB, "
        f"WAL {result['wal_bytes_per_point']:.0f} B/point, CPU {result['cpu_us_per_point']:.1f} µs/point"
    )
    _fill_live(rows, [result])
    costs = []
    for n, (cpu, storage) in zip(s.growth_series, growth, strict=True):
        metrics = min(n, 100)
        step = Load(
            runs=n // metrics,
            metrics=metrics,
            rate_per_series=s.growth_rate / n,
            seconds=s.growth_seconds,
            producers=2,
            workers=1,
            compaction_age_seconds=s.growth_compaction_age_seconds,
            old_seconds=s.growth_seconds,
            probe=False,
        )
        ctx.progress(f"  growth: {n:,} series at {s.growth_rate:,} points/s for {s.growth_seconds:g} s")
        got = await measure(ctx, step, settle=True)
        ctx.progress(
            f"    CPU {got['cpu_us_per_point']:.1f} µs/point, storage {got['storage_bytes_per_point']:.1f} B/point"
            f" (settled in {got['settle_seconds']:.0f} s)"
        )
        cpu.runstream = Stats.of([got["cpu_us_per_point"]])
        storage.runstream = Stats.of([got["storage_bytes_per_point"]])
        cpu.details["runs"] = [got]
        costs.append(got["cpu_us_per_point"])
    flat.runstream = Stats.of([costs[-1] / costs[0]])
    flat.note = (
        "growth: a fixed total rate spread over more series, so each series gets fewer points: storage per point "
        "grows with the per-chunk row overhead over fewer points per chunk (bench/NOTES.md)."
    )
    rows[0].note = (
        "1 point per series per second from 4 producer processes; freshness by a probe every 20 ms through the "
        "query service; chunks counted after the workers' own compaction; one measurement (see the module docstring)."
    )
    return everything
