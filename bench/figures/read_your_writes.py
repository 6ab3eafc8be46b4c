"""9. Read-your-writes: ``run.complete()`` then ``run.get_metrics()`` returns everything, and how long it takes.

While a paced producer process offers a background load (points/s over 20
metrics, as in the freshness figure) to the same ingest worker, a measuring
process repeats for ``consistency_seconds``: start a run, log
``consistency_points`` floats over five metrics, ``complete()``, then
``get_metrics()``, and checks the answer holds every point (it must: the
read waits for ingest to store this process's writes; an incomplete answer
fails the figure). Each measurement gives the p50 and p99 of the time from
calling ``complete()`` to ``get_metrics()`` returning; the row is the median
over the repetitions.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.by_rate import percentile_rows
from bench.context import Context
from bench.load import PacedLoad
from bench.proc import run_worker
from bench.rows import Row
from bench.services import Sandbox
from bench.stats import percentile

TITLE = "9. read-your-writes: complete() then get_metrics() returns everything"
PROBE_INTERVAL = 0.02
#: The background load runs this much longer than the measurement, so every sample is under load.
_LOAD_MARGIN_SECONDS = 2.0


async def _measure(ctx: Context, sandbox: Sandbox, rate: int) -> list[dict[str, Any]]:
    s = ctx.sizes
    results = []
    load_seconds = s.consistency_seconds + _LOAD_MARGIN_SECONDS
    async with PacedLoad(sandbox.settings, rate, load_seconds, s.reps, PROBE_INTERVAL) as load:
        for rep in range(s.reps):
            await load.next_run()
            load.go()
            measured = await asyncio.to_thread(
                run_worker,
                "rs_complete_read",
                {"seconds": s.consistency_seconds, "points": s.consistency_points},
                env=sandbox.env(),
                log_dir=ctx.log_dir,
            )
            offered = (await load.done())["points"] / load_seconds
            results.append(_summary(measured, offered))
            ctx.progress(
                f"    {rate:,}/s rep {rep + 1}: p50 {results[-1]['p50'] * 1000:.0f} ms, "
                f"p99 {results[-1]['p99'] * 1000:.0f} ms ({results[-1]['samples']} runs, each read whole)"
            )
    return results


def _summary(measured: dict[str, Any], offered: float) -> dict[str, Any]:
    """One measurement's percentiles; a partial answer fails the figure."""
    if measured["incomplete"]:
        partial, total = measured["incomplete"], len(measured["seconds"])
        raise RuntimeError(f"{partial} of {total} reads after complete() were partial")
    return {
        "p50": percentile(measured["seconds"], 50),
        "p99": percentile(measured["seconds"], 99),
        "read_p50": percentile(measured["read_seconds"], 50),
        "read_p99": percentile(measured["read_seconds"], 99),
        "samples": len(measured["seconds"]),
        "background_points_per_second": offered,
    }


async def run(ctx: Context) -> list[Row]:
    s = ctx.sizes
    return await percentile_rows(
        ctx,
        key="read_your_writes",
        title=TITLE,
        rates=s.consistency_rates,
        measure=_measure,
        note=(
            f"{s.consistency_seconds:g} s per measurement of: start_logging(), {s.consistency_points:,} run.log "
            "calls over 5 metrics, then the time from calling complete() to get_metrics() returning every point "
            "(checked; a partial answer fails the figure). Meanwhile another process logs the background load "
            "over 20 metrics into the same single ingest worker. The read waits on its read-after token (see "
            "producer/_consistency.py); details hold the read alone (read_p50/read_p99)."
        ),
    )
