"""Administrative operations on stored data."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from ._errors import UnknownExperimentError

__all__ = ["DroppedExperiment", "drop_experiment"]


@dataclass(frozen=True, slots=True)
class DroppedExperiment:
    """What :func:`drop_experiment` deleted."""

    runs: int
    series: int
    points: int
    entries: int


async def drop_experiment(dsn: str, name: str) -> DroppedExperiment:
    """Delete one experiment with its runs, series, points, entries and status history.

    One transaction: readers see all of it or none of it. Producer sessions are
    kept, so a replay of an old batch cannot bring a dropped run back (its
    batches arrive without ``run_started`` and are dead-lettered as
    ``unknown_run``). Rows in ``files`` belong to the query service's artifact
    store and are left to it. Raises :class:`UnknownExperimentError`.
    """
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            experiment = await conn.fetchval("SELECT id FROM experiments WHERE name = $1 FOR UPDATE", name)
            if experiment is None:
                raise UnknownExperimentError(f"no experiment named {name!r}")
            runs = [r["id"] for r in await conn.fetch("SELECT id FROM runs WHERE experiment_id = $1", experiment)]
            series = [r["id"] for r in await conn.fetch("SELECT id FROM series WHERE run_id = ANY($1::uuid[])", runs)]
            points = await conn.fetchval(
                "WITH gone AS (DELETE FROM point_chunks WHERE series_id = ANY($1::bigint[]) RETURNING n)"
                " SELECT coalesce(sum(n), 0) FROM gone",
                series,
            )
            entries = await conn.execute("DELETE FROM series_entries WHERE series_id = ANY($1::bigint[])", series)
            await conn.execute("DELETE FROM series WHERE id = ANY($1::bigint[])", series)
            await conn.execute("DELETE FROM status_history WHERE run_id = ANY($1::uuid[])", runs)
            await conn.execute("DELETE FROM runs WHERE id = ANY($1::uuid[])", runs)
            await conn.execute("DELETE FROM experiments WHERE id = $1", experiment)
    finally:
        await conn.close()
    return DroppedExperiment(len(runs), len(series), int(points), _count(entries))


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[1])
