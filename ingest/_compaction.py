"""Merging a series' small chunks into big ones, after the fact.

Ingest writes one chunk per series per flush, so a slowly logged metric (one
point per training step, a few steps a second) gets chunks of a few points:
~30 bytes per point and slow whole-series reads instead of ~12 bytes and a
few milliseconds (docs/storage-layout.md). The compactor takes series with at
least ``merge_at`` chunks under SMALL_CHUNK_POINTS points (``series.
small_chunks``, kept by the writer) and rewrites each day's small chunks of
the series as chunks of up to CHUNK_POINTS points in (time, ordinal) order.

It changes no point, so readers and their caches (keyed on point counts) are
unaffected; a reader sees either the old chunks or the new ones (one
transaction). Locking: the series row first (FOR UPDATE), then its small
chunks. Writers only insert chunks and update the series row after their
COPY, so they wait at most for one series' rewrite and never deadlock with
it; a chunk a writer adds meanwhile is not in this snapshot, stays as it is,
and the writer's ``small_chunks + n`` counts it after this transaction's
reset.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any, Final

import asyncpg
import numpy as np

from runstream.chunks import CHUNK_COLUMNS, DECODE_COLUMNS, decode_row, encode_chunk

__all__ = ["CHUNK_POINTS", "SMALL_CHUNK_POINTS", "ChunkCompactor"]

log = logging.getLogger(__name__)

#: Points per chunk at most: bounds what a reader decodes to answer a small
#: step range, at well under a byte per point of row overhead.
CHUNK_POINTS: Final = 10_000
#: Chunks smaller than this are worth merging (migration 0005 counts them).
SMALL_CHUNK_POINTS: Final = 1_000


class ChunkCompactor:
    """Merges small chunks through a pool it does not own."""

    def __init__(self, pool: asyncpg.Pool, *, merge_at: int = 8, series_per_pass: int = 200) -> None:
        self._pool = pool
        self._merge_at = merge_at
        self._series_per_pass = series_per_pass

    async def compact(self) -> int:
        """One pass over the series most in need; returns how many chunks it removed."""
        series = await self._pool.fetch(
            "SELECT id FROM series WHERE small_chunks >= $1 ORDER BY small_chunks DESC LIMIT $2",
            self._merge_at,
            self._series_per_pass,
        )
        removed = 0
        for (series_id,) in series:
            removed += await self.compact_series(series_id)
        if removed:
            log.info("compaction: %d small chunks merged in %d series", removed, len(series))
        return removed

    async def compact_series(self, series_id: int) -> int:
        """Merge the small chunks of one series, day by day; returns chunks removed."""
        async with self._pool.acquire() as conn, conn.transaction():
            series = await conn.fetchrow(
                "SELECT value_type, first_day, last_day FROM series WHERE id = $1 FOR UPDATE", series_id
            )
            if series is None or series["first_day"] is None:
                return 0
            rows = await conn.fetch(
                f"SELECT ctid, stored_day, {', '.join(DECODE_COLUMNS)} FROM point_chunks"  # noqa: S608 - constant columns
                " WHERE series_id = $1 AND n < $2 AND stored_day BETWEEN $3 AND $4"
                " ORDER BY stored_day, time_start FOR UPDATE",
                series_id,
                SMALL_CHUNK_POINTS,
                series["first_day"],
                series["last_day"],
            )
            by_day: dict[int, list[asyncpg.Record]] = defaultdict(list)
            for row in rows:
                by_day[row["stored_day"]].append(row)
            is_text = series["value_type"] == "str"
            removed = left_small = 0
            for day, chunks in by_day.items():
                if len(chunks) < 2:
                    left_small += len(chunks)
                    continue
                merged = _merge(series_id, chunks, is_text=is_text)
                await conn.execute(
                    "DELETE FROM point_chunks WHERE stored_day = $1 AND ctid = ANY($2::tid[])",
                    day,
                    [c["ctid"] for c in chunks],
                )
                await conn.copy_records_to_table(
                    "point_chunks", columns=(*CHUNK_COLUMNS, "stored_day"), records=[(*m, day) for m in merged]
                )
                removed += len(chunks) - len(merged)
                left_small += sum(1 for m in merged if m[3] < SMALL_CHUNK_POINTS)
            await conn.execute("UPDATE series SET small_chunks = $2 WHERE id = $1", series_id, left_small)
        return removed


def _merge(series_id: int, chunks: list[asyncpg.Record], *, is_text: bool) -> list[tuple[Any, ...]]:
    """The points of ``chunks`` as new chunk records of up to CHUNK_POINTS, in (time, ordinal) order."""
    decoded = [decode_row(c) for c in chunks]
    steps = np.concatenate([d.steps for d in decoded])
    times = np.concatenate([d.times for d in decoded])
    ordinals = np.concatenate([d.ordinals for d in decoded])
    order = np.lexsort((ordinals, times))
    if is_text:
        texts = [t for d in decoded for t in (d.texts or [])]
        values: Any = [texts[i] for i in order]
    else:
        values = np.concatenate([d.values for d in decoded if d.values is not None])[order]
    steps, times, ordinals = steps[order], times[order], ordinals[order]
    return [
        encode_chunk(
            series_id,
            steps[i : i + CHUNK_POINTS],
            times[i : i + CHUNK_POINTS],
            ordinals[i : i + CHUNK_POINTS],
            values[i : i + CHUNK_POINTS],
            is_text=is_text,
        )
        for i in range(0, len(steps), CHUNK_POINTS)
    ]
