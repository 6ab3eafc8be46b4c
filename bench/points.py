"""What the benchmarks need to know about ingest's storage, in one place.

The layout of points belongs to ingest and changes (a row per point before
migration 0004; now packed chunks in ``point_chunks``, partitioned by the day
they were stored). Nothing here names a table: the tables that hold points are
found in the catalogue (top-level ``points``/``point_*``), and each one's
columns say how to count it:

- :func:`count_points` counts the scalar points stored for some runs: the
  chunk's point count (column ``n``) summed, else one per row;
- :func:`point_bytes` sums ``pg_total_relation_size`` (heap, TOAST and
  indexes) over those tables; a partitioned parent has no storage of its own,
  so it sums every partition in its tree instead;
- :func:`vacuum_full` rewrites them, so that the space of rows deleted (by
  compaction) no longer counts;
- :func:`column_bytes` splits the stored column values by series, for a
  breakdown per metric;
- :func:`wait_committed` returns when every record on the topic is in
  PostgreSQL, from the Kafka offsets ingest stores with each transaction.
"""

# ruff: noqa: S608 - table and column names come from pg_catalog; values are $n parameters.

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from runstream import kafka

__all__ = ["column_bytes", "count_points", "point_bytes", "point_tables", "vacuum_full", "wait_committed"]


async def point_tables(conn: asyncpg.Connection) -> list[str]:
    """Top-level tables (not partitions) named ``points``, ``points_*`` or ``point_*``."""
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
        " AND c.relname ~ '^points?(_|$)' ORDER BY c.relname"
    )
    return [r["relname"] for r in rows]


async def _columns(conn: asyncpg.Connection, table: str) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute"
        " WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped",
        table,
    )
    return {r["attname"]: r["type"] for r in rows}


async def _count_expression(conn: asyncpg.Connection, table: str) -> str:
    """How many points one row of ``table`` holds: 1, or the length of its array column."""
    columns = await _columns(conn, table)
    if "count" in columns or "n" in columns:
        return f'sum(t."{"count" if "count" in columns else "n"}")'
    arrays = [name for name, kind in columns.items() if kind.endswith("[]")]
    if arrays:
        return f'sum(cardinality(t."{arrays[0]}"))'
    return "count(*)"


async def count_points(conn: asyncpg.Connection, run_ids: Sequence[str] | None = None) -> int:
    """Scalar points stored, for ``run_ids`` (every run if None)."""
    total = 0
    for table in await point_tables(conn):
        expr = await _count_expression(conn, table)
        columns = await _columns(conn, table)
        if run_ids is None:
            total += int(await conn.fetchval(f"SELECT coalesce({expr}, 0) FROM {table} t") or 0)
        elif "series_id" in columns:
            total += int(
                await conn.fetchval(
                    f"SELECT coalesce({expr}, 0) FROM {table} t JOIN series s ON s.id = t.series_id"
                    " WHERE s.run_id = ANY($1::uuid[])",
                    list(run_ids),
                )
                or 0
            )
        elif "run_id" in columns:
            total += int(
                await conn.fetchval(
                    f"SELECT coalesce({expr}, 0) FROM {table} t WHERE t.run_id = ANY($1::uuid[])", list(run_ids)
                )
                or 0
            )
    return total


async def point_bytes(conn: asyncpg.Connection) -> int:
    """Bytes on disk of every table that holds points, with its TOAST, indexes and partitions."""
    total = 0
    for table in await point_tables(conn):
        total += int(
            await conn.fetchval(
                "SELECT CASE WHEN c.relkind = 'p' THEN"
                " (SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM pg_partition_tree(c.oid))"
                " ELSE pg_total_relation_size(c.oid) END FROM pg_class c WHERE c.oid = $1::regclass",
                table,
            )
        )
    return total


async def vacuum_full(conn: asyncpg.Connection) -> None:
    """``VACUUM FULL`` of every table holding points (its partitions and TOAST included).

    Compaction deletes the small chunks it merges; their space is reused by
    later writes but stays in the files, so right after compaction
    :func:`point_bytes` counts the points twice over. This rewrites the tables
    to their live rows (taking an exclusive lock while it does).
    """
    for table in await point_tables(conn):
        await conn.execute(f"VACUUM FULL {table}")


async def column_bytes(conn: asyncpg.Connection) -> dict[int, tuple[int, int]]:
    """Per series id: (bytes of its rows' column values as stored, points), over the tables with ``series_id``.

    ``pg_column_size`` of every column, compressed and TOASTed as PostgreSQL
    keeps it: what one series' encoding costs, without the row headers, page
    space and indexes that :func:`point_bytes` counts for all of them at once.
    """
    found: dict[int, tuple[int, int]] = {}
    for table in await point_tables(conn):
        columns = await _columns(conn, table)
        if "series_id" not in columns:
            continue
        size = " + ".join(f'coalesce(pg_column_size(t."{name}"), 0)' for name in columns)
        rows = await conn.fetch(
            f"SELECT t.series_id, sum({size}) AS bytes, {await _count_expression(conn, table)} AS points"
            f" FROM {table} t GROUP BY t.series_id"
        )
        for r in rows:
            bytes_, points = found.get(r["series_id"], (0, 0))
            found[r["series_id"]] = (bytes_ + int(r["bytes"]), points + int(r["points"]))
    return found


async def end_offsets(target: kafka.KafkaTarget, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(**kafka.client_options(target), enable_auto_commit=False)
    try:
        await kafka.start(consumer, target)
        await consumer.topics()  # fetches the cluster's metadata
        partitions = consumer.partitions_for_topic(topic) or set()
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def _offsets_caught_up(conn: asyncpg.Connection, topic: str, ends: dict[int, int]) -> bool:
    rows = await conn.fetch("SELECT partition, next_offset FROM consumer_offsets WHERE topic = $1", topic)
    stored = {r["partition"]: r["next_offset"] for r in rows}
    return all(stored.get(p, 0) >= end for p, end in ends.items() if end > 0)


async def wait_committed(
    conn: asyncpg.Connection,
    *,
    cluster: kafka.KafkaTarget,
    topic: str,
    run_ids: Sequence[str],
    expected_points: int,
    timeout_seconds: float,
    interval_seconds: float = 0.02,
) -> tuple[float, int]:
    """Wait until all ``expected_points`` of ``run_ids`` are committed; return (time.time() then, points found).

    Call it once every producer has flushed. It watches the offsets ingest
    stores in the same transaction as the points (cheap to poll) until they
    reach the topic's end, then counts the points once to check; when the
    offsets are not stored that way, it falls back to polling the count.
    """
    deadline = time.monotonic() + timeout_seconds
    ends = await end_offsets(cluster, topic)
    has_offsets = bool(await conn.fetchval("SELECT to_regclass('consumer_offsets') IS NOT NULL"))
    if has_offsets:
        while time.monotonic() < deadline:
            if await _offsets_caught_up(conn, topic, ends):
                done_at = time.time()
                found = await count_points(conn, run_ids)
                if found >= expected_points:
                    return done_at, found
                break  # offsets said done but points are missing: fall back to counting
            await asyncio.sleep(interval_seconds)
    found = 0
    while time.monotonic() < deadline:
        found = await count_points(conn, run_ids)
        if found >= expected_points:
            return time.time(), found
        await asyncio.sleep(max(interval_seconds, 0.25))
    return time.time(), found
