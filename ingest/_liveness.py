"""The liveness sweep: silent runs turn NotResponding, then Failed.

A run is *silent* when ingest has stored nothing for it (``runs.seen_at``,
ingest's own clock, so producer clock skew does not matter) for a while. A
silent ``Running`` run becomes ``NotResponding``; a ``NotResponding`` run
silent for longer becomes ``Failed`` with the error ``{"reason": "no
heartbeat"}``. A heartbeat that arrives in between brings the run back to
``Running`` (the writer's status rules); nothing brings back a ``Failed`` run.

Every worker sweeps; ``FOR UPDATE SKIP LOCKED`` and re-checking the status in
the same statement make concurrent sweeps and flushes safe. A worker sweeps
only while it is caught up (``ready()``): after a PostgreSQL outage the data of
live runs may still be waiting in Kafka, and their silence is ingest's, not
theirs.
"""

from __future__ import annotations

import logging
from typing import Final

import asyncpg
import orjson

from ._notify import notify_changed_runs

__all__ = ["LivenessSweeper"]

log = logging.getLogger(__name__)

NO_HEARTBEAT: Final = orjson.dumps({"reason": "no heartbeat"}).decode()

_TO_NOT_RESPONDING: Final = """
WITH stale AS (
    SELECT id FROM runs
    WHERE status = 'Running' AND coalesce(seen_at, created_at) < now() - make_interval(secs => $1)
    FOR UPDATE SKIP LOCKED
), changed AS (
    UPDATE runs AS r SET status = 'NotResponding' FROM stale WHERE r.id = stale.id RETURNING r.id
)
INSERT INTO status_history (run_id, status, time) SELECT id, 'NotResponding', now() FROM changed
RETURNING run_id
"""

_TO_FAILED: Final = """
WITH stale AS (
    SELECT id FROM runs
    WHERE status = 'NotResponding' AND coalesce(seen_at, created_at) < now() - make_interval(secs => $1)
    FOR UPDATE SKIP LOCKED
), changed AS (
    UPDATE runs AS r SET status = 'Failed', ended_at = now(), error = $2::jsonb
    FROM stale WHERE r.id = stale.id RETURNING r.id
)
INSERT INTO status_history (run_id, status, time, error) SELECT id, 'Failed', now(), $2::jsonb FROM changed
RETURNING run_id
"""


class LivenessSweeper:
    """One sweep at a time; :class:`~ingest._periodic.Periodic` repeats it."""

    def __init__(self, pool: asyncpg.Pool, *, not_responding_after_seconds: float, failed_after_seconds: float) -> None:
        self._pool = pool
        self._not_responding_after = not_responding_after_seconds
        self._failed_after = failed_after_seconds

    async def sweep(self) -> tuple[int, int]:
        """One pass; returns how many runs turned (NotResponding, Failed)."""
        async with self._pool.acquire() as conn, conn.transaction():
            failed = await conn.fetch(_TO_FAILED, self._failed_after, NO_HEARTBEAT)
            silent = await conn.fetch(_TO_NOT_RESPONDING, self._not_responding_after)
            await notify_changed_runs(conn, [str(r["run_id"]) for r in failed + silent])
        changed = len(silent), len(failed)
        if any(changed):
            log.info("liveness: %d runs NotResponding, %d Failed (no heartbeat)", *changed)
        return changed
