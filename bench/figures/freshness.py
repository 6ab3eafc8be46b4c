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
import time
from typing import Any

import aiohttp

from bench.by_rate import percentile_rows
from bench.context import Context
from bench.load import PacedLoad
from bench.query_api import read_series
from bench.rows import Bar, Row
from bench.services import Sandbox
from bench.stats import percentile

TITLE = "3. freshness: run.log to visible through the query service"
PROBE_INTERVAL = 0.02
POLL_INTERVAL = 0.02


async def poll_probes(session: aiohttp.ClientSession, base: str, run_id: str, expected: list[int]) -> dict[int, float]:
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
    s = ctx.sizes
    results = []
    async with (
        PacedLoad(sandbox.settings, rate, s.freshness_seconds, s.reps, PROBE_INTERVAL) as load,
        aiohttp.ClientSession() as session,
    ):
        for rep in range(s.reps):
            run_id = await load.next_run()
            expected_box: list[int] = []
            poller = asyncio.create_task(poll_probes(session, sandbox.settings.query_url, run_id, expected_box))
            load.go()
            done = await load.done()
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
    return results


async def run(ctx: Context) -> list[Row]:
    return await percentile_rows(
        ctx,
        key="freshness",
        title=TITLE,
        rates=ctx.sizes.freshness_rates,
        measure=_measure_rate,
        note=(
            f"{ctx.sizes.freshness_seconds:g} s of logging per run over 20 metrics plus a probe every 20 ms; "
            "polled every 20 ms via GET /api/runs/{id}/series?name=probe&start_step=k; delay = response "
            "arrival - logged time (upper bound). One ingest worker, one query service."
        ),
        bars=([Bar("max", 0.25, "≤ 250 ms")], [Bar("max", 1.0, "≤ 1 s")]),
    )
