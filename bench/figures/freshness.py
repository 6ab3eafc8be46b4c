"""3. Freshness: delay from ``run.log`` to the point being visible through the query service.

A producer process logs at an offered rate (points/s over 20 metrics) and,
every 20 ms, a ``probe`` point whose value is the wall-clock time it was
logged. This process polls the probe series through the query service every
20 ms (``start_step`` = the next probe expected) and takes, for each probe,
the time its response arrived minus its value: an upper bound, late by up to
one polling interval. Each measurement gives a p50 and a p99; a probe never
seen within 10 s after logging stopped counts as infinitely late.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import time
from typing import Any

import aiohttp

from bench.context import Context
from bench.proc import next_message
from bench.query_api import read_series
from bench.rows import Bar, Row
from bench.services import Sandbox
from bench.stats import Stats, percentile
from bench.workers.rs_paced import paced

TITLE = "3. freshness: run.log to visible through the query service"
PROBE_INTERVAL = 0.02
POLL_INTERVAL = 0.02


async def _poll(session: aiohttp.ClientSession, base: str, run_id: str, expected: list[int]) -> dict[int, float]:
    """Probe step -> delay in seconds, until all ``expected[0]`` probes (known once logging stops) are seen."""
    delays: dict[int, float] = {}
    next_step = 1  # step 0 is the probe logged before the measurement
    stopped_at: float | None = None
    while True:
        steps, values, _ = await read_series(session, base, run_id, "probe", start_step=next_step)
        seen = time.time()
        for step, value in zip(steps, values, strict=True):
            if step >= next_step and step not in delays:
                delays[step] = seen - float(value)
        if steps:
            next_step = max(next_step, max(steps) + 1)
        if expected:
            stopped_at = stopped_at or time.monotonic()
            if len(delays) >= expected[0] or time.monotonic() - stopped_at > 10.0:
                return delays
        await asyncio.sleep(POLL_INTERVAL)


async def _measure_rate(ctx: Context, sandbox: Sandbox, rate: int) -> list[dict[str, Any]]:
    mp = multiprocessing.get_context("spawn")
    queue, go = mp.Queue(), mp.Queue()
    proc = mp.Process(
        target=paced,
        args=(sandbox.settings.as_env(), rate, ctx.sizes.freshness_seconds, PROBE_INTERVAL, ctx.sizes.reps, queue, go),
        daemon=True,
    )
    proc.start()
    results = []
    async with aiohttp.ClientSession() as session:
        for rep in range(ctx.sizes.reps):
            run_id = (await next_message(queue, [proc], "paced producer"))["run_id"]
            expected_box: list[int] = []
            poller = asyncio.create_task(_poll(session, sandbox.settings.query_url, run_id, expected_box))
            go.put("go")
            done = await next_message(queue, [proc], "paced producer")
            expected = done["probes"]
            expected_box.append(expected)
            delays = await poller
            samples = list(delays.values()) + [math.inf] * max(0, expected - len(delays))
            results.append(
                {
                    "p50": percentile(samples, 50),
                    "p99": percentile(samples, 99),
                    "probes": expected,
                    "seen": len(delays),
                    "points": done["points"],
                    "offered_points_per_second": done["points"] / ctx.sizes.freshness_seconds,
                }
            )
            ctx.progress(
                f"    {rate:,}/s rep {rep + 1}: p50 {results[-1]['p50'] * 1000:.0f} ms, "
                f"p99 {results[-1]['p99'] * 1000:.0f} ms ({len(delays)}/{expected} probes)"
            )
    await asyncio.to_thread(proc.join, 60)
    return results


def _rows(rate: int) -> tuple[Row, Row]:
    label = f"{rate // 1000}k points/s"
    return (
        Row(
            key=f"freshness_p50_{rate}",
            figure=f"{TITLE}, p50 at {label}",
            unit="s",
            bars=[Bar("max", 0.25, "≤ 250 ms")],
        ),
        Row(
            key=f"freshness_p99_{rate}",
            figure=f"{TITLE}, p99 at {label}",
            unit="s",
            bars=[Bar("max", 1.0, "≤ 1 s")],
        ),
    )


async def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    gone = ctx.lacks("producer", "ingest", "query")
    pairs = {rate: _rows(rate) for rate in ctx.sizes.freshness_rates}
    if gone:
        for pair in pairs.values():
            for row in pair:
                row.missing = gone
        return [row for pair in pairs.values() for row in pair]
    async with Sandbox(ctx.infra, "fresh") as sandbox:
        await sandbox.start_ingest(1)
        await sandbox.start_query()
        for rate, (p50, p99) in pairs.items():
            ctx.progress(f"  offered load {rate:,} points/s, {ctx.sizes.freshness_seconds:g} s per run")
            results = await _measure_rate(ctx, sandbox, rate)
            p50.runstream = Stats.of(r["p50"] for r in results)
            p99.runstream = Stats.of(r["p99"] for r in results)
            p50.details["runs"] = results
            p50.note = (
                f"{ctx.sizes.freshness_seconds:g} s of logging per run over 20 metrics plus a probe every 20 ms; "
                "polled every 20 ms via GET /api/runs/{id}/series?name=probe&start_step=k; delay = response "
                "arrival - logged time (upper bound). One ingest worker, one query service."
            )
            rows += [p50, p99]
        sandbox.check_alive()
    return rows
