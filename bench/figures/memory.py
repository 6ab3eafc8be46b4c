"""8. Memory: peak RSS of the SDK logging N points, with Kafka stopped and with Kafka up.

One fresh process per measurement (peak RSS is per process). With Kafka
"stopped" the SDK's bootstrap is a local port where nothing listens. The
ingest worker's peak RSS under full load is measured by the throughput figure.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.context import Context
from bench.proc import free_port, run_worker
from bench.rows import Bar, Row
from bench.services import Sandbox
from bench.stats import Stats

TITLE = "8. SDK peak RSS"


async def _one(ctx: Context, env: dict[str, str], kafka: str, rep: int) -> dict[str, Any]:
    result = await asyncio.to_thread(
        run_worker, "rs_rss", {"points": ctx.sizes.rss_points, "kafka": kafka}, env=env, log_dir=ctx.log_dir
    )
    ctx.progress(
        f"    Kafka {kafka}, rep {rep + 1}: {result['peak_rss_mb']:.0f} MB"
        + (f" ({result['error']})" if result["error"] else "")
    )
    return result


async def _reps(ctx: Context, env: dict[str, str], kafka: str) -> list[dict[str, Any]]:
    """One process after the other; QUICK runs them side by side (a process's peak RSS is its own)."""
    if ctx.quick:
        return list(await asyncio.gather(*(_one(ctx, env, kafka, rep) for rep in range(ctx.sizes.reps))))
    return [await _one(ctx, env, kafka, rep) for rep in range(ctx.sizes.reps)]


def _fill(row: Row, results: list[dict[str, Any]], points: int) -> None:
    row.details["runs"] = results
    errors = [r["error"] for r in results if r["error"]]
    if errors:
        row.missing = f"FAIL: {errors[0]}"[:200]
        row.runstream = None
    else:
        row.runstream = Stats.of(r["peak_rss_mb"] for r in results)


async def run(ctx: Context) -> list[Row]:
    n = ctx.sizes.rss_points
    down = Row(
        key="sdk_rss_kafka_down",
        figure=f"{TITLE}, {n:,} points, Kafka stopped (spooling)",
        unit="MB",
        bars=[Bar("max", 200, "≤ 200 MB")],
    )
    up = Row(
        key="sdk_rss_kafka_up",
        figure=f"{TITLE}, {n:,} points, Kafka up",
        unit="MB",
        bars=[Bar("max", 200, "≤ 200 MB")],
    )
    if gone := ctx.lacks("producer"):
        down.missing = up.missing = gone
        return [down, up]
    async with Sandbox(ctx.infra, "rss") as sandbox:
        ctx.progress(f"  {n:,} points, Kafka stopped")
        dead = f"127.0.0.1:{free_port()}"
        _fill(down, await _reps(ctx, sandbox.env(RUNSTREAM_KAFKA_BOOTSTRAP=dead), "down"), n)
        ctx.progress(f"  {n:,} points, Kafka up")
        _fill(up, await _reps(ctx, sandbox.env(), "up"), n)
    down.note = (
        "VmHWM of a fresh process (interpreter and imports included) after logging over 20 metrics and a 5 s "
        "flush attempt; the SDK's bootstrap is a port where nothing listens. An exception from log() fails the row."
    )
    up.note = "the same with the broker up and a full flush; no ingest worker runs."
    return [down, up]
