"""Packing the raw chunks written before the storage codec existed: ``runstream pack-chunks``.

Ingest writes chunks of :data:`~runstream.chunks.SMALL_CHUNK_POINTS` or more
packed, and compaction packs what it merges, so new data needs nothing. Large
chunks written before the codec stay raw (readers read both); this rewrites
them packed, a batch per transaction (``DELETE ... RETURNING`` of rows claimed
with ``SKIP LOCKED``, one COPY back into the same day's partition). No point
changes, so readers and their caches are unaffected, and it can run beside
ingest and query, be interrupted, and be run again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import asyncpg

from runstream.chunks import CHUNK_COLUMNS, DECODE_COLUMNS, PACKED, RAW, SMALL_CHUNK_POINTS, decode_row, encode_chunk

__all__ = ["PackedChunks", "pack_raw_chunks"]

#: Chunks rewritten per transaction: at most ~10,000 points each, so a few MB per commit.
PACK_BATCH_CHUNKS: Final = 100

# Raw numeric chunks large enough to pack whose times are microsecond deltas (4 bytes a point):
# the ones encode_chunk packs. Claimed by (partition, ctid), so any chunk can be named.
_CLAIM_AND_DELETE = f"""
DELETE FROM point_chunks AS c USING (
    SELECT tableoid, ctid FROM point_chunks
    WHERE codec = $1 AND n >= $2 AND vals IS NOT NULL AND length(times) = 4 * n
    LIMIT $3 FOR UPDATE SKIP LOCKED
) AS picked
WHERE c.tableoid = picked.tableoid AND c.ctid = picked.ctid
RETURNING c.series_id, c.stored_day, length(c.times) + length(c.vals) AS size,
    {", ".join(f"c.{k}" for k in DECODE_COLUMNS)}
"""  # noqa: S608 - constant column names


@dataclass(frozen=True, slots=True)
class PackedChunks:
    """What :func:`pack_raw_chunks` rewrote: chunks, their points, and their times + values bytes before and after."""

    chunks: int = 0
    points: int = 0
    bytes_before: int = 0
    bytes_after: int = 0


async def pack_raw_chunks(dsn: str, *, batch_chunks: int = PACK_BATCH_CHUNKS) -> PackedChunks:
    """Rewrite every raw chunk that would be packed today as a packed one; return what was done."""
    if batch_chunks < 1:
        raise ValueError(f"batch_chunks must be at least 1, got {batch_chunks}")
    conn = await asyncpg.connect(dsn)
    total = PackedChunks()
    try:
        while True:
            async with conn.transaction():
                rows = await conn.fetch(_CLAIM_AND_DELETE, RAW, SMALL_CHUNK_POINTS, batch_chunks)
                if not rows:
                    return total
                records = [(*encode_chunk(row["series_id"], *decode_row(row)), row["stored_day"]) for row in rows]
                if any(record[-2] != PACKED for record in records):  # the claim's conditions are encode_chunk's
                    raise AssertionError("a claimed chunk did not pack: the claim and encode_chunk disagree")
                await conn.copy_records_to_table(
                    "point_chunks", columns=(*CHUNK_COLUMNS, "stored_day"), records=records
                )
            after = sum(len(r[CHUNK_COLUMNS.index("times")]) + len(r[CHUNK_COLUMNS.index("vals")]) for r in records)
            total = PackedChunks(
                total.chunks + len(rows),
                total.points + sum(row["n"] for row in rows),
                total.bytes_before + sum(row["size"] for row in rows),
                total.bytes_after + after,
            )
    finally:
        await conn.close()
