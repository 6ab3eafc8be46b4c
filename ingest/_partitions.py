"""The daily partitions of ``point_chunks``: created before use, dropped after retention.

A chunk goes to the partition of the UTC day ingest stores it (``stored_day``,
days since 1970-01-01; migration 0004 defines the partition, as the SQL
function ``runstream_point_partition``). The writer asks for today's partition
before each flush; only the first ask of a day reaches PostgreSQL, in its own
short transaction, never inside a flush's, so creating a partition (which
locks the parent table) never waits on locks a flush holds.

Retention drops whole partitions whose day ended more than ``retention_days``
ago: no row-by-row DELETE, no vacuum debt. Every worker may run it; a lock
timeout keeps it from stalling the flushes and reads queued behind it.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import date
from typing import Final

import asyncpg

__all__ = ["PointPartitions", "utc_day"]

log = logging.getLogger(__name__)

_NAME: Final = re.compile(r"^point_chunks_(\d{8})$")
_DAY_SECONDS: Final = 86_400
_EPOCH: Final = date(1970, 1, 1)


def utc_day(epoch_seconds: float | None = None) -> int:
    """Days since 1970-01-01 (UTC) of ``epoch_seconds`` (default: now)."""
    return int((time.time() if epoch_seconds is None else epoch_seconds) // _DAY_SECONDS)


class PointPartitions:
    """Creates and drops ``point_chunks`` partitions through a pool it does not own."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._known: set[int] = set()

    async def ensure(self, day: int) -> None:
        """Make sure the partition of ``day`` exists."""
        if day in self._known:
            return
        await self._pool.fetchval("SELECT runstream_point_partition($1)", day)
        self._known.add(day)

    async def drop_expired(self, retention_days: int, *, today: int | None = None) -> list[str]:
        """Drop the partitions of days before ``today - retention_days``; return their names."""
        keep_from = (utc_day() if today is None else today) - retention_days
        dropped = []
        async with self._pool.acquire() as conn:
            names = await conn.fetch(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'point_chunks'::regclass ORDER BY c.relname"
            )
            for (name,) in names:
                match = _NAME.match(name)
                if match is None or _day_of(match.group(1)) >= keep_from:
                    continue
                async with conn.transaction():
                    await conn.execute("SET LOCAL lock_timeout = '2s'")
                    # The name comes from the catalogue and matched _NAME.
                    await conn.execute(f'DROP TABLE IF EXISTS "{name}"')
                dropped.append(name)
                self._known.discard(_day_of(match.group(1)))
        if dropped:
            log.info("retention: dropped %d point partitions older than %d days", len(dropped), retention_days)
        return dropped


def _day_of(yyyymmdd: str) -> int:
    return (date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:])) - _EPOCH).days
