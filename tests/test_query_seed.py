"""Seeding for the query tests: plain parameterised inserts into the 0001 tables.

The query service is tested on its own here, so the rows are written the way
ingest stores them (see ``query/_metrics.py`` for that contract) rather than
sent through Kafka; the end-to-end tests cover the whole path.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import orjson


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def seed_run(
    db: asyncpg.Pool,
    *,
    experiment: str = "query-tests",
    run_id: uuid.UUID | None = None,
    status: str = "Running",
    display_name: str | None = None,
    parent_id: uuid.UUID | None = None,
    created_at: datetime | None = None,
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
    heartbeat_at: datetime | None = None,
    error: Any = None,
    tags: dict[str, str | None] | None = None,
    properties: dict[str, str] | None = None,
) -> uuid.UUID:
    run_id = run_id or uuid.uuid4()
    created_at = created_at or datetime.now(UTC)
    async with db.acquire() as conn, conn.transaction():
        experiment_id = await conn.fetchval(
            "INSERT INTO experiments (name) VALUES ($1)"
            " ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
            experiment,
        )
        await conn.execute(
            """
            INSERT INTO runs (id, experiment_id, display_name, parent_id, status, created_at, started_at,
                              ended_at, heartbeat_at, error, tags, properties)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11::jsonb, $12::jsonb)
            """,
            run_id,
            experiment_id,
            display_name,
            parent_id,
            status,
            created_at,
            started_at,
            ended_at,
            heartbeat_at,
            dumps(error) if error is not None else None,
            dumps(tags or {}),
            dumps(properties or {}),
        )
    return run_id


async def _series(conn: asyncpg.Connection, run_id: uuid.UUID, name: str, kind: str, value_type: str | None) -> int:
    series_id: int = await conn.fetchval(
        "INSERT INTO series (run_id, name, kind, value_type) VALUES ($1, $2, $3, $4) RETURNING id",
        run_id,
        name,
        kind,
        value_type,
    )
    return series_id


async def seed_scalars(
    db: asyncpg.Pool,
    run_id: uuid.UUID,
    name: str,
    value_type: str,
    values: Sequence[Any],
    *,
    times: Sequence[float] | None = None,
    ordinals: Sequence[int] | None = None,
    insert_order: Sequence[int] | None = None,
) -> None:
    """Points as ingest writes them: numbers in ``value`` (bools as 0/1), strings in ``text_value``.

    ``insert_order`` permutes the physical insert order, to show that the
    service orders by (time, ordinal) and not by how rows happen to lie.
    """
    times = times if times is not None else [1_700_000_000.0 + i for i in range(len(values))]
    ordinals = ordinals if ordinals is not None else list(range(len(values)))
    order = insert_order if insert_order is not None else range(len(values))
    async with db.acquire() as conn, conn.transaction():
        series_id = await _series(conn, run_id, name, "scalar", value_type)
        records = []
        for i in order:
            v = values[i]
            number = float(v) if not isinstance(v, str) else None
            text = v if isinstance(v, str) else None
            records.append((series_id, i, times[i], ordinals[i], number, text))
        await conn.copy_records_to_table(
            "points", records=records, columns=["series_id", "step", "time", "ordinal", "value", "text_value"]
        )
        await _refresh_summary(conn, series_id)


async def _refresh_summary(conn: asyncpg.Connection, series_id: int) -> None:
    """The per-series summary of migration 0002, as ingest keeps it, recomputed from the points."""
    await conn.execute(
        """
        UPDATE series s SET
            point_count = agg.n, min_value = agg.lo, max_value = agg.hi, max_step = agg.max_step,
            last_step = last.step, last_time = last.time, last_ordinal = last.ordinal,
            last_value = last.value, last_text = last.text_value
        FROM (
            SELECT count(*) AS n, max(step) AS max_step,
                   min(value) FILTER (WHERE value NOT IN ('NaN', 'Infinity', '-Infinity')) AS lo,
                   max(value) FILTER (WHERE value NOT IN ('NaN', 'Infinity', '-Infinity')) AS hi
            FROM points WHERE series_id = $1
        ) agg,
        LATERAL (
            SELECT step, time, ordinal, value, text_value FROM points WHERE series_id = $1
            ORDER BY time DESC, ordinal DESC LIMIT 1
        ) last
        WHERE s.id = $1
        """,
        series_id,
    )


async def seed_entries(db: asyncpg.Pool, run_id: uuid.UUID, name: str, kind: str, entries: Sequence[Any]) -> None:
    """``series_entries`` rows, one per logging call, values in their JSON (``$float``-tagged) form."""
    async with db.acquire() as conn, conn.transaction():
        series_id = await _series(conn, run_id, name, kind, None)
        for position, entry in enumerate(entries):
            await conn.execute(
                "INSERT INTO series_entries (series_id, time, position, value) VALUES ($1, $2, $3, $4::jsonb)",
                series_id,
                1_700_000_000.0 + position,
                position,
                dumps(entry),
            )


async def get(url: str, *, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """Status and decoded JSON body of a GET."""
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        body = await resp.read()
        assert resp.content_type == "application/json", (resp.status, body[:300])
        return resp.status, orjson.loads(body)


async def get_text(url: str, *, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Status, content type and text of a GET."""
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        return resp.status, resp.content_type, await resp.text()


async def append_points(
    db: asyncpg.Pool, run_id: uuid.UUID, name: str, points: Sequence[tuple[int, float, int, float]]
) -> None:
    """More (step, time, ordinal, value) points for an existing numeric series."""
    async with db.acquire() as conn, conn.transaction():
        series_id = await conn.fetchval("SELECT id FROM series WHERE run_id = $1 AND name = $2", run_id, name)
        await conn.copy_records_to_table(
            "points",
            records=[(series_id, step, time, ordinal, value, None) for step, time, ordinal, value in points],
            columns=["series_id", "step", "time", "ordinal", "value", "text_value"],
        )
        await _refresh_summary(conn, series_id)


async def bump_session(db: asyncpg.Pool, run_id: uuid.UUID, session_id: uuid.UUID, last_seq: int) -> None:
    """What ingest does with every stored batch: record the session's last batch number."""
    await db.execute(
        "INSERT INTO producer_sessions (session_id, run_id, last_seq) VALUES ($1, $2, $3)"
        " ON CONFLICT (session_id) DO UPDATE SET last_seq = EXCLUDED.last_seq",
        session_id,
        run_id,
        last_seq,
    )
