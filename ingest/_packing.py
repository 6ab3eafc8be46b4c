"""Packing large raw chunks with the storage codec, in the background and by ``runstream pack-chunks``.

Ingest's flush writes chunks raw: packing costs 25-50 ns a value, which on the
flush path would be ingest's throughput. Compaction packs the small chunks it
merges; this packs the large ones a flush wrote (a busy series gets chunks of
thousands of points) once their last point is ``older_than_seconds`` old, a
batch per transaction: ``DELETE ... RETURNING`` of chunks claimed with ``SKIP
LOCKED`` (so every worker packs and no two take the same chunk), one COPY
back into the same day's partition. The chunks written before the codec
existed are packed the same way, lazily, or at once by ``runstream
pack-chunks`` (:func:`pack_raw_chunks`).

No point changes, so readers and their caches are unaffected; a reader sees
the raw chunk or the packed one (one transaction). Ages are the points' own
times (the producer's clock): a producer whose clock runs ahead only delays
its chunks' packing.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Final

import asyncpg

from runstream.chunks import CHUNK_COLUMNS, DECODE_COLUMNS, PACKED, RAW, SMALL_CHUNK_POINTS, decode_row, encode_chunk
from runstream.pg import Conn

__all__ = ["PACK_BATCH_CHUNKS", "PackedChunks", "pack_batch", "pack_raw_chunks"]

#: Chunks rewritten per transaction: at most ~10,000 points each, so a few MB per commit.
PACK_BATCH_CHUNKS: Final = 100

# The chunks encode_chunk(pack=True) packs: raw, numeric, SMALL_CHUNK_POINTS or more, times in
# microsecond deltas (4 bytes a point). Constants, not parameters, so that the planner uses the
# partial index of migration 0022 (whose predicate is the first two conditions). Claimed by
# (partition, ctid), so any chunk can be named.
_CLAIM_AND_DELETE: Final = f"""
DELETE FROM point_chunks AS c USING (
    SELECT tableoid, ctid FROM point_chunks
    WHERE codec = {RAW} AND n >= {SMALL_CHUNK_POINTS} AND time_end < $1
      AND vals IS NOT NULL AND length(times) = 4 * n
    LIMIT $2 FOR UPDATE SKIP LOCKED
) AS picked
WHERE c.tableoid = picked.tableoid AND c.ctid = picked.ctid
RETURNING c.series_id, c.stored_day, length(c.times) + length(c.vals) AS size,
    {", ".join(f"c.{k}" for k in DECODE_COLUMNS)}
"""  # noqa: S608 - constants only


@dataclass(frozen=True, slots=True)
class PackedChunks:
    """Chunks packed, their points, and their times + values bytes before and after."""

    chunks: int = 0
    points: int = 0
    bytes_before: int = 0
    bytes_after: int = 0

    def __add__(self, other: PackedChunks) -> PackedChunks:
        return PackedChunks(
            self.chunks + other.chunks,
            self.points + other.points,
            self.bytes_before + other.bytes_before,
            self.bytes_after + other.bytes_after,
        )


async def pack_batch(conn: Conn, *, older_than_seconds: float, limit: int = PACK_BATCH_CHUNKS) -> PackedChunks:
    """Pack up to ``limit`` raw chunks whose last point is older than ``older_than_seconds``, in one transaction."""
    cutoff = time.time() - older_than_seconds
    async with conn.transaction():
        rows = await conn.fetch(_CLAIM_AND_DELETE, cutoff, limit)
        if not rows:
            return PackedChunks()
        records = [(*encode_chunk(r["series_id"], *decode_row(r), pack=True), r["stored_day"]) for r in rows]
        if any(record[-2] != PACKED for record in records):  # the claim's conditions are encode_chunk's
            raise AssertionError("a claimed chunk did not pack: the claim and encode_chunk disagree")
        await conn.copy_records_to_table("point_chunks", columns=(*CHUNK_COLUMNS, "stored_day"), records=records)
    times, vals = CHUNK_COLUMNS.index("times"), CHUNK_COLUMNS.index("vals")
    return PackedChunks(
        len(rows),
        sum(r["n"] for r in rows),
        sum(r["size"] for r in rows),
        sum(len(record[times]) + len(record[vals]) for record in records),
    )


async def pack_raw_chunks(dsn: str, *, batch_chunks: int = PACK_BATCH_CHUNKS) -> PackedChunks:
    """Pack every raw chunk that can be, whatever its age (``runstream pack-chunks``); return what was done."""
    if batch_chunks < 1:
        raise ValueError(f"batch_chunks must be at least 1, got {batch_chunks}")
    conn = await asyncpg.connect(dsn)
    total = PackedChunks()
    try:
        while (done := await pack_batch(conn, older_than_seconds=-math.inf, limit=batch_chunks)).chunks:
            total += done
    finally:
        await conn.close()
    return total
