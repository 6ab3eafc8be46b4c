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
import multiprocessing
from typing import Any

from bench.context import Context
from bench.proc import next_message, run_worker
from bench.rows import Row
from bench.services import Sandbox
from bench.stats import Stats, percentile
from bench.workers.rs_paced import paced

TITLE = "9. read-your-writes: complete() then get_metrics() returns everything"
PROBE_INTERVAL = 0.02
#: The background load runs this much longer than the measurement, so every sample is under load.
_LOAD_MARGIN_SECONDS = 2.0


async def _measure(ctx: Context, sandbox: Sandbox, rate: int) -> list[dict[str, Any]]:
    s = ctx.sizes
    mp = multiprocessing.get_context("spawn")
    queue, go = mp.Queue(), mp.Queue()
    load_seconds = s.consistency_seconds + _LOAD_MARGIN_SECONDS
    proc = mp.Process(
        target=paced,
        args=(sandbox.settings.as_env(), rate, load_seconds, PROBE_INTERVAL, s.reps, queue, go),
        daemon=True,
    )
    proc.start()
    results = []
    for rep in range(s.reps):
        await next_message(queue, [proc], "paced producer")  # its run is started
        go.put("go")
        result = await asyncio.to_thread(
            run_worker,
            "rs_complete_read",
            {"seconds": s.consistency_seconds, "points": s.consistency_points},
            env=sandbox.env(),
            log_dir=ctx.log_dir,
        )
        done = await next_message(queue, [proc], "paced producer")
        if result["incomplete"]:
            partial, total = result["incomplete"], len(result["seconds"])
            raise RuntimeError(f"{partial} of {total} reads after complete() were partial")
        results.append(
            {
                "p50": percentile(result["seconds"], 50),
                "p99": percentile(result["seconds"], 99),
                "read_p50": percentile(result["read_seconds"], 50),
                "read_p99": percentile(result["read_seconds"], 99),
                "samples": len(result["seconds"]),
                "background_points_per_second": done["points"] / load_seconds,
            }
        )
        ctx.progress(
            f"    {rate:,}/s rep {rep + 1}: p50 {results[-1]['p50'] * 1000:.0f} ms, "
            f"p99 {results[-1]['p99'] * 1000:.0f} ms ({results[-1]['samples']} runs, all complete)"
        )
    await asyncio.to_thread(proc.join, 60)
    return results


def _rows(rate: int) -> tuple[Row, Row]:
    label = f"{rate // 1000}k points/s"
    return (
        Row(key=f"read_your_writes_p50_{rate}", figure=f"{TITLE}, p50 at {label}", unit="s"),
        Row(key=f"read_your_writes_p99_{rate}", figure=f"{TITLE}, p99 at {label}", unit="s"),
    )


async def run(ctx: Context) -> list[Row]:
    pairs = {rate: _rows(rate) for rate in ctx.sizes.consistency_rates}
    rows = [row for pair in pairs.values() for row in pair]
    if gone := ctx.lacks("producer", "ingest", "query"):
        for row in rows:
            row.missing = gone
        return rows
    async with Sandbox(ctx.infra, "consistency") as sandbox:
        await sandbox.start_ingest(1)
        await sandbox.start_query()
        for rate, (p50, p99) in pairs.items():
            ctx.progress(f"  background load {rate:,} points/s, {ctx.sizes.consistency_seconds:g} s per measurement")
            results = await _measure(ctx, sandbox, rate)
            p50.runstream = Stats.of(r["p50"] for r in results)
            p99.runstream = Stats.of(r["p99"] for r in results)
            p50.details["runs"] = results
            p50.note = (
                f"{ctx.sizes.consistency_seconds:g} s per measurement of: start_logging(), "
                f"{ctx.sizes.consistency_points:,} run.log calls over 5 metrics, then the time from calling "
                "complete() to get_metrics() returning every point (checked; a partial answer fails the figure). "
                "Meanwhile another process logs the background load over 20 metrics into the same single "
                "ingest worker. The read waits on its read-after token (see producer/_consistency.py); "
                "details hold the read alone (read_p50/read_p99)."
            )
        sandbox.check_alive()
    return rows
