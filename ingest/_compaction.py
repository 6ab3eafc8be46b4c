"""Merging a series' small chunks into big ones, after the fact, shared by every worker.

Ingest writes one chunk per series per flush, so a slowly logged metric (one
point per training step, a few steps a second) gets chunks of a few points,
and with 100k live series a chunk holds about one: ~30 bytes per point and
slow whole-series reads instead of ~12 bytes and a few milliseconds
(docs/storage-layout.md). The compactor takes series with at least two chunks
under SMALL_CHUNK_POINTS points (``series.small_chunks``, kept by the writer)
and either ``merge_at`` of them or the oldest waiting ``age_seconds``
(``series.small_since``, migration 0019), and rewrites each day's small
chunks of the series as chunks of up to CHUNK_POINTS points in (time,
ordinal) order. The age bounds the rewriting: a series logged at 1 Hz is
merged once a minute, not once every ``merge_at`` flushes.

Sharing: a pass claims a batch of series with ``FOR UPDATE SKIP LOCKED``, so
workers running passes at once take disjoint batches and nobody waits on
anybody; one transaction per batch (claim, ``DELETE ... RETURNING`` of their
small chunks, one COPY of the merged chunks, one UPDATE of the counts), so a
batch of ``batch_series`` series costs a handful of round trips, and a pass
takes batches until none is left or ``pass_seconds`` have gone.

Packing: a pass then packs (:mod:`ingest._packing`) the large chunks that
flushes wrote raw, once their last point is ``age_seconds`` old, in batches
claimed the same way; merged chunks come out packed already. ``observe``
gets ``series`` 0 for a batch of packing.

It changes no point, so readers and their caches (keyed on point counts) are
unaffected; a reader sees either the old chunks or the new ones (one
transaction). Locking: the series rows first, then their small chunks (the
DELETE). Writers only insert chunks and update the series row after their
COPY, so they wait at most for one batch and never deadlock with it; a chunk
a writer adds meanwhile is not in this snapshot, stays as it is, and the
writer's ``small_chunks + n`` counts it after this transaction's reset.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, Final

import asyncpg
import numpy as np

from runstream.chunks import (
    CHUNK_COLUMNS,
    DECODE_COLUMNS,
    SMALL_CHUNK_POINTS,
    PointColumns,
    decode_compact,
    decode_row,
    encode_chunk,
    encode_chunks,
    is_compact,
)

from ._packing import PACK_BATCH_CHUNKS, PackedChunks, pack_batch

__all__ = ["CHUNK_POINTS", "SMALL_CHUNK_POINTS", "ChunkCompactor", "slices"]

log = logging.getLogger(__name__)

#: Points per chunk at most: bounds what a reader decodes to answer a small
#: step range, at well under a byte per point of row overhead.
CHUNK_POINTS: Final = 10_000


class ChunkCompactor:
    """Merges small chunks through a pool it does not own; ``observe(series, points, seconds)`` after each batch."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        merge_at: int = 64,
        age_seconds: float = 60.0,
        batch_series: int = 200,
        pass_seconds: float = 5.0,
        observe: Callable[[int, int, float], None] = lambda series, points, seconds: None,
    ) -> None:
        self._pool = pool
        self._merge_at = merge_at
        self._age_seconds = age_seconds
        self._batch_series = batch_series
        self._pass_seconds = pass_seconds
        self._observe = observe

    async def compact(self) -> int:
        """One pass: batches of the series most in need until none is left; returns how many chunks it removed."""
        deadline = time.monotonic() + self._pass_seconds
        removed = series = 0
        while True:
            claimed, gone = await self.compact_batch()
            removed, series = removed + gone, series + claimed
            if claimed < self._batch_series or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0)  # a batch's merging is CPU: let the flushes in between
        if removed:
            log.info("compaction: %d small chunks merged in %d series", removed, series)
        packed = await self._pack(deadline)
        if packed.chunks:
            log.info("compaction: %d large chunks of %d points packed", packed.chunks, packed.points)
        return removed

    async def _pack(self, deadline: float) -> PackedChunks:
        """Pack the large raw chunks flushes wrote once they are as old as small ones wait to be merged."""
        total = PackedChunks()
        while time.monotonic() < deadline:
            started = time.perf_counter()
            async with self._pool.acquire() as conn:
                done = await pack_batch(conn, older_than_seconds=self._age_seconds)
            total += done
            self._observe(0, done.points, time.perf_counter() - started)
            if done.chunks < PACK_BATCH_CHUNKS:
                break
            await asyncio.sleep(0)  # packing is CPU: let the flushes in between
        return total

    async def compact_batch(self) -> tuple[int, int]:
        """Claim one batch of series no one else holds and merge their small chunks: (series, chunks removed)."""
        started = time.perf_counter()
        async with self._pool.acquire() as conn, conn.transaction():
            claimed = await conn.fetch(
                "SELECT id, value_type, first_day, last_day FROM series"
                " WHERE small_chunks >= 2 AND first_day IS NOT NULL"
                " AND (small_chunks >= $1 OR small_since <= now() - make_interval(secs => $2))"
                " ORDER BY small_chunks DESC LIMIT $3 FOR UPDATE SKIP LOCKED",
                self._merge_at,
                self._age_seconds,
                self._batch_series,
            )
            if not claimed:
                return 0, 0
            chunks = await conn.fetch(
                f"DELETE FROM point_chunks WHERE series_id = ANY($1::bigint[]) AND n < $2"  # noqa: S608 - constant columns
                f" AND stored_day BETWEEN $3 AND $4 RETURNING series_id, stored_day, {', '.join(DECODE_COLUMNS)}",
                [s["id"] for s in claimed],
                SMALL_CHUNK_POINTS,
                min(s["first_day"] for s in claimed),
                max(s["last_day"] for s in claimed),
            )
            text = {s["id"] for s in claimed if s["value_type"] == "str"}
            merged, left_small = _merge_all(chunks, text)
            await conn.copy_records_to_table("point_chunks", columns=(*CHUNK_COLUMNS, "stored_day"), records=merged)
            ids = [s["id"] for s in claimed]
            await conn.execute(
                "UPDATE series AS s SET small_chunks = u.small, small_since = NULL"
                " FROM unnest($1::bigint[], $2::int[]) AS u(id, small) WHERE s.id = u.id",
                ids,
                [left_small.get(i, 0) for i in ids],
            )
        removed = len(chunks) - len(merged)
        self._observe(len(claimed), sum(c["n"] for c in chunks), time.perf_counter() - started)
        return len(claimed), removed


def slices(columns: PointColumns) -> Iterable[PointColumns]:
    """The columns in pieces of at most CHUNK_POINTS points, in order."""
    if len(columns.steps) <= CHUNK_POINTS:  # the usual flush: one piece, no slicing
        yield columns
        return
    for start in range(0, len(columns.steps), CHUNK_POINTS):
        part = slice(start, start + CHUNK_POINTS)
        yield PointColumns(*(column[part] for column in columns))


def _merge_all(chunks: list[asyncpg.Record], text: set[int]) -> tuple[list[tuple[Any, ...]], dict[int, int]]:
    """The records replacing ``chunks`` (each series' and day's merged), and the small chunks left per series.

    The groups whose chunks are all in the usual encoding (nearly all: a
    writer's small chunks) are decoded together and encoded together, so a
    batch of thousands of one-point chunks costs a few whole-array passes.
    """
    groups: dict[tuple[int, int], list[asyncpg.Record]] = defaultdict(list)
    for chunk in chunks:
        groups[(chunk["series_id"], chunk["stored_day"])].append(chunk)
    usual = [key for key, rows in groups.items() if key[0] not in text and all(is_compact(r) for r in rows)]
    pieces = [
        (series_id, day, piece)
        for (series_id, day), columns in zip(usual, _decoded([groups[key] for key in usual]), strict=True)
        for piece in slices(columns)
    ]
    encoded = encode_chunks([series_id for series_id, _, _ in pieces], [piece for _, _, piece in pieces], pack=True)
    records = [(*record, day) for record, (_, day, _) in zip(encoded, pieces, strict=True)]
    done = set(usual)
    for (series_id, day), group in groups.items():
        if (series_id, day) not in done:
            records += [(*m, day) for m in _merge(series_id, group, is_text=series_id in text)]
    left_small: dict[int, int] = defaultdict(int)
    for record in records:
        left_small[record[0]] += record[3] < SMALL_CHUNK_POINTS
    return records, left_small


def _decoded(groups: list[list[asyncpg.Record]]) -> list[PointColumns]:
    """Each group's points (of :func:`is_compact` rows), in (time, ordinal) order, decoded in one pass over all."""
    if not groups:
        return []
    bulk = decode_compact([row for rows in groups for row in rows])
    first = np.cumsum(bulk.n) - bulk.n
    within = np.arange(int(bulk.n.sum())) - np.repeat(first, bulk.n)
    steps = np.repeat(bulk.step_start, bulk.n) + np.repeat(bulk.step_stride, bulk.n) * within
    ordinals = np.repeat(bulk.ord_start, bulk.n) + within
    bounds = np.cumsum([0, *(sum(row["n"] for row in rows) for rows in groups)]).tolist()
    out = []
    for start, end in itertools.pairwise(bounds):
        order = start + np.lexsort((ordinals[start:end], bulk.times[start:end]))
        out.append(PointColumns(steps[order], bulk.times[order], ordinals[order], bulk.values[order]))
    return out


def _merge(series_id: int, chunks: list[asyncpg.Record], *, is_text: bool) -> list[tuple[Any, ...]]:
    """The points of ``chunks`` as new chunk records of up to CHUNK_POINTS, in (time, ordinal) order."""
    decoded = [decode_row(c) for c in chunks]
    steps = np.concatenate([d.steps for d in decoded])
    times = np.concatenate([d.times for d in decoded])
    ordinals = np.concatenate([d.ordinals for d in decoded])
    order = np.lexsort((ordinals, times))
    if is_text:
        texts = [t for d in decoded for t in d.values]
        values: Any = [texts[i] for i in order]
    else:
        values = np.concatenate([d.values for d in decoded])[order]
    steps, times, ordinals = steps[order], times[order], ordinals[order]
    return [
        encode_chunk(
            series_id,
            steps[i : i + CHUNK_POINTS],
            times[i : i + CHUNK_POINTS],
            ordinals[i : i + CHUNK_POINTS],
            values[i : i + CHUNK_POINTS],
            is_text=is_text,
            pack=True,
        )
        for i in range(0, len(steps), CHUNK_POINTS)
    ]
