"""7. Scale: many concurrent runs, many partitions and workers, and how write cost grows with a run's size.

- 1,000 concurrent runs x 20 metrics (many small batches, the realistic case)
  from 4 producer processes into one worker;
- the topic at 48 partitions with 4 producer processes and 4 workers;
- one run of 20 metrics holding 10^5, 10^6 and 10^7 points: end-to-end
  points/s should stay flat as the run grows.
Each is the throughput measurement of figure 2 (fresh database, topic and group per run).
Not run in QUICK mode.
"""

from __future__ import annotations

from bench.context import Context
from bench.figures.throughput import runstream_once
from bench.rows import Row
from bench.stats import Stats

TITLE = "7. scale"


async def _series(ctx: Context, label: str, **kwargs: int) -> list[dict[str, object]]:
    results = []
    for rep in range(ctx.sizes.reps):
        ctx.progress(f"  rep {rep + 1}/{ctx.sizes.reps}: {label}")
        result = await runstream_once(ctx, **kwargs)  # type: ignore[arg-type]
        ctx.progress(f"    {result['points_per_second']:,.0f} points/s")
        results.append(result)
    return results


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
    plans += [
        (
            f"scale_run_{n}",
            f"{TITLE}: one run of 20 metrics, {n:,} points (P=1, W=1)",
            {"producers": 1, "workers": 1, "points": n, "runs": 1},
        )
        for n in s.growth_points
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
        results = await _series(ctx, figure, **kwargs)
        row.runstream = Stats.of(r["points_per_second"] for r in results)  # type: ignore[misc]
        row.details["runs"] = results
    if rows:
        rows[0].note = (
            "each producer process opens 250 runs (the SDK gives each run its own sender thread and Kafka "
            "producer) and logs every metric of every run once per step."
        )
        rows[
            -1
        ].note = "growth: the same measurement for a single run; flat points/s = cost per point independent of size."
    return rows
