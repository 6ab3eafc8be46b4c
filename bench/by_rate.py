"""Figures that give a latency's p50 and p99 at each of several offered loads (freshness, read-your-writes).

Each measures, per load, in one sandbox with one ingest worker and a query
service; a measurement returns a ``p50`` and a ``p99`` per repetition, and
the rows are their medians over the repetitions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bench.context import Context
from bench.rows import Bar, Row
from bench.services import Sandbox
from bench.stats import Stats

__all__ = ["percentile_rows"]

#: ``measure(ctx, sandbox, rate)``: one dict with ``p50`` and ``p99`` per repetition.
Measure = Callable[[Context, Sandbox, int], Awaitable[list[dict[str, Any]]]]


async def percentile_rows(
    ctx: Context,
    *,
    key: str,
    title: str,
    rates: Sequence[int],
    measure: Measure,
    note: str,
    bars: tuple[list[Bar], list[Bar]] = ([], []),
) -> list[Row]:
    """The p50 and p99 rows for each rate, measured in a sandbox named after ``key``."""
    pairs = {rate: _pair(key, title, rate, bars) for rate in rates}
    rows = [row for pair in pairs.values() for row in pair]
    if gone := ctx.lacks("producer", "ingest", "query"):
        for row in rows:
            row.missing = gone
        return rows
    async with Sandbox(ctx.infra, key) as sandbox:
        await sandbox.start_ingest(1)
        await sandbox.start_query()
        for rate, (p50, p99) in pairs.items():
            ctx.progress(f"  offered load {rate:,} points/s")
            results = await measure(ctx, sandbox, rate)
            p50.runstream = Stats.of(r["p50"] for r in results)
            p99.runstream = Stats.of(r["p99"] for r in results)
            p50.details["runs"] = results
            p50.note = note
        sandbox.check_alive()
    return rows


def _pair(key: str, title: str, rate: int, bars: tuple[list[Bar], list[Bar]]) -> tuple[Row, Row]:
    label = f"{rate // 1000}k points/s"
    return (
        Row(key=f"{key}_p50_{rate}", figure=f"{title}, p50 at {label}", unit="s", bars=list(bars[0])),
        Row(key=f"{key}_p99_{rate}", figure=f"{title}, p99 at {label}", unit="s", bars=list(bars[1])),
    )
