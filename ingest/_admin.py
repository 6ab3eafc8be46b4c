"""Administrative operations on stored data: dropping an experiment, and runs past retention.

Both delete whole runs with everything ingest stored for them - series (with
their summaries), points, entries (lists, rows, tables, images) and status
history - a batch of runs per transaction, so readers see a run whole or not at
all. Their ``files`` rows belong to the query service's artifact store and are
left to it: ``runstream gc-artifacts`` deletes the rows of runs that are gone
(once a day old), then the blobs no row references. Producer sessions are kept,
so a replay of an old batch cannot bring a dropped run back (its batches arrive
without ``run_started`` and are dead-lettered as ``unknown_run``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import asyncpg

from runstream.events import TERMINAL_STATUSES

from ._errors import UnknownExperimentError

__all__ = ["DroppedRuns", "drop_experiment", "drop_expired_runs"]

#: Run trees deleted per transaction by :func:`drop_expired_runs`: bounded locks and WAL per commit.
EXPIRY_BATCH_TREES: Final = 200

# Every run tree (a top-level run, or one whose parent is not stored, with its descendants) in
# which every run ended (a terminal status) over $1 days ago; of one experiment when $2 is set.
_EXPIRED_TREES = """
WITH RECURSIVE tree (id, root) AS (
    SELECT r.id, r.id FROM runs r
    WHERE (r.parent_id IS NULL OR NOT EXISTS (SELECT 1 FROM runs p WHERE p.id = r.parent_id))
      AND ($2::bigint IS NULL OR r.experiment_id = $2)
    UNION
    SELECT c.id, t.root FROM runs c JOIN tree t ON c.parent_id = t.id
)
SELECT array_agg(t.id) AS runs FROM tree t JOIN runs r ON r.id = t.id
GROUP BY t.root
HAVING bool_and(r.status = ANY($3::text[]) AND r.ended_at < now() - make_interval(days => $1))
"""


@dataclass(frozen=True, slots=True)
class DroppedRuns:
    """What :func:`drop_experiment` or :func:`drop_expired_runs` deleted (or, dry, would delete);
    ``files``: the runs' file rows, left for ``gc-artifacts``."""

    runs: int = 0
    series: int = 0
    points: int = 0
    entries: int = 0
    files: int = 0

    def __add__(self, other: DroppedRuns) -> DroppedRuns:
        return DroppedRuns(
            self.runs + other.runs,
            self.series + other.series,
            self.points + other.points,
            self.entries + other.entries,
            self.files + other.files,
        )


async def drop_experiment(dsn: str, name: str) -> DroppedRuns:
    """Delete one experiment with its runs and all their data, in one transaction.

    Raises :class:`UnknownExperimentError`.
    """
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            experiment = await conn.fetchval("SELECT id FROM experiments WHERE name = $1 FOR UPDATE", name)
            if experiment is None:
                raise UnknownExperimentError(f"no experiment named {name!r}")
            runs = [r["id"] for r in await conn.fetch("SELECT id FROM runs WHERE experiment_id = $1", experiment)]
            dropped = await _delete_runs(conn, runs)
            await conn.execute("DELETE FROM experiments WHERE id = $1", experiment)
    finally:
        await conn.close()
    return dropped


async def drop_expired_runs(
    dsn: str, *, older_than_days: int, experiment: str | None = None, dry_run: bool = False
) -> DroppedRuns:
    """Delete the runs that ended more than ``older_than_days`` days ago, with all their data.

    A run goes with its whole tree (parent and children), and only once every
    run of the tree has ended (Completed, Failed or Canceled) before the cut:
    a live run, or one that never ended, is never expired. ``experiment``
    limits it to one experiment's runs (:class:`UnknownExperimentError` if
    there is none); its row stays. ``dry_run`` counts what would go and
    deletes nothing.
    """
    if older_than_days < 0:
        raise ValueError(f"older_than_days must be >= 0, got {older_than_days}")
    conn = await asyncpg.connect(dsn)
    try:
        experiment_id = None
        if experiment is not None:
            experiment_id = await conn.fetchval("SELECT id FROM experiments WHERE name = $1", experiment)
            if experiment_id is None:
                raise UnknownExperimentError(f"no experiment named {experiment!r}")
        trees = [
            r["runs"]
            for r in await conn.fetch(_EXPIRED_TREES, older_than_days, experiment_id, sorted(TERMINAL_STATUSES))
        ]
        total = DroppedRuns()
        for start in range(0, len(trees), EXPIRY_BATCH_TREES):
            runs = [run for tree in trees[start : start + EXPIRY_BATCH_TREES] for run in tree]
            async with conn.transaction():
                total += await _delete_runs(conn, runs, dry_run=dry_run)
    finally:
        await conn.close()
    return total


async def _delete_runs(conn: asyncpg.Connection, runs: Sequence[uuid.UUID], *, dry_run: bool = False) -> DroppedRuns:
    """Delete ``runs`` and everything ingest stored for them, in the caller's transaction; the counts."""
    runs = [r["id"] for r in await conn.fetch("SELECT id FROM runs WHERE id = ANY($1::uuid[]) FOR UPDATE", runs)]
    series = [r["id"] for r in await conn.fetch("SELECT id FROM series WHERE run_id = ANY($1::uuid[])", runs)]
    files = await conn.fetchval("SELECT count(*) FROM files WHERE run_id = ANY($1::uuid[])", runs)
    if dry_run:
        points = await conn.fetchval(
            "SELECT coalesce(sum(n), 0) FROM point_chunks WHERE series_id = ANY($1::bigint[])", series
        )
        entries = await conn.fetchval("SELECT count(*) FROM series_entries WHERE series_id = ANY($1::bigint[])", series)
        return DroppedRuns(len(runs), len(series), int(points), int(entries), int(files))
    points = await conn.fetchval(
        "WITH gone AS (DELETE FROM point_chunks WHERE series_id = ANY($1::bigint[]) RETURNING n)"
        " SELECT coalesce(sum(n), 0) FROM gone",
        series,
    )
    entries = _count(await conn.execute("DELETE FROM series_entries WHERE series_id = ANY($1::bigint[])", series))
    await conn.execute("DELETE FROM series WHERE id = ANY($1::bigint[])", series)
    await conn.execute("DELETE FROM status_history WHERE run_id = ANY($1::uuid[])", runs)
    await conn.execute("DELETE FROM runs WHERE id = ANY($1::uuid[])", runs)
    return DroppedRuns(len(runs), len(series), int(points), entries, int(files))


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[1])
