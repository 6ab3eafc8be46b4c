"""Telling listeners which runs a transaction changed (``runstream.events.CHANGED_RUNS_CHANNEL``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from runstream.events import CHANGED_RUNS_CHANNEL
from runstream.pg import Conn

__all__ = ["notify_changed_runs"]

# A NOTIFY payload must stay under 8,000 bytes: 200 ids of 37 bytes each.
_IDS_PER_NOTIFY: Final = 200


async def notify_changed_runs(conn: Conn, run_ids: Iterable[str]) -> None:
    """NOTIFY the ids, comma-separated, inside the caller's transaction.

    PostgreSQL delivers a NOTIFY at COMMIT and drops it on ROLLBACK, so a
    listener (the query service's live streams) hears exactly of what it can
    now read, without polling.
    """
    runs = sorted(set(run_ids))
    for start in range(0, len(runs), _IDS_PER_NOTIFY):
        await conn.execute(
            "SELECT pg_notify($1, $2)", CHANGED_RUNS_CHANNEL, ",".join(runs[start : start + _IDS_PER_NOTIFY])
        )
