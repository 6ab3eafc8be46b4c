"""Seeding for the query tests: plain parameterised inserts into ingest's tables.

The query service is tested on its own here, so the rows are written the way
ingest stores them (see ``query/_metrics.py`` for that contract; scalar points
as ``point_chunks`` rows encoded by ``runstream.chunks``) rather than sent
through Kafka; the end-to-end tests cover the whole path.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import numpy as np
import orjson

from query._points import read_run_points
from runstream.events import CHANGED_RUNS_CHANNEL
from tests.support import copy_chunks


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
    await announce(db, run_id)
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
    chunk_points: int = 1_000,
) -> None:
    """Points as ingest writes them, ``chunk_points`` to a chunk; the step of value ``i`` is ``i``.

    ``insert_order`` permutes the order points are packed in (so times go back
    within a chunk and chunks overlap), to show that the service orders by
    (time, ordinal) and not by how points happen to lie.
    """
    times = times if times is not None else [1_700_000_000.0 + i for i in range(len(values))]
    ordinals = ordinals if ordinals is not None else list(range(len(values)))
    order = list(insert_order if insert_order is not None else range(len(values)))
    async with db.acquire() as conn, conn.transaction():
        series_id = await _series(conn, run_id, name, "scalar", value_type)
        day = await copy_chunks(
            conn,
            series_id,
            order,
            [times[i] for i in order],
            [ordinals[i] for i in order],
            [values[i] for i in order],
            chunk_points=chunk_points,
        )
        await _refresh_summary(conn, run_id, name, day)
    await announce(db, run_id)


async def _refresh_summary(conn: asyncpg.Connection, run_id: uuid.UUID, name: str, day: int) -> None:
    """The per-series summary (migrations 0002 and 0004) as ingest keeps it, after storing chunks on ``day``."""
    await conn.execute(
        "UPDATE series SET first_day = coalesce(first_day, $3), last_day = $3 WHERE run_id = $1 AND name = $2",
        run_id,
        name,
        day,
    )
    points = (await read_run_points(conn, run_id, name=name))[name]
    text = points.values.dtype == object
    finite = None if text else points.values[np.isfinite(points.values)]
    await conn.execute(
        """
        UPDATE series SET point_count = $3, min_value = $4, max_value = $5, max_step = $6,
            last_step = $7, last_time = $8, last_ordinal = $9, last_value = $10, last_text = $11,
            first_time = (SELECT min(c.time_start) FROM point_chunks c WHERE c.series_id = series.id)
        WHERE run_id = $1 AND name = $2
        """,
        run_id,
        name,
        len(points),
        float(finite.min()) if finite is not None and finite.size else None,
        float(finite.max()) if finite is not None and finite.size else None,
        int(points.steps.max()),
        int(points.steps[-1]),
        float(points.times[-1]),
        int(points.ordinals[-1]),
        None if text else float(points.values[-1]),
        str(points.values[-1]) if text else None,
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
    """More (step, time, ordinal, value) points for an existing numeric series, in one chunk (one flush)."""
    async with db.acquire() as conn, conn.transaction():
        series_id = await conn.fetchval("SELECT id FROM series WHERE run_id = $1 AND name = $2", run_id, name)
        day = await copy_chunks(conn, series_id, *(list(column) for column in zip(*points, strict=True)))
        await _refresh_summary(conn, run_id, name, day)
    await announce(db, run_id)


async def bump_session(db: asyncpg.Pool, run_id: uuid.UUID, session_id: uuid.UUID, last_seq: int) -> None:
    """What ingest does with every stored batch: record the session's last batch number, announce the run."""
    await db.execute(
        "INSERT INTO producer_sessions (session_id, run_id, last_seq) VALUES ($1, $2, $3)"
        " ON CONFLICT (session_id) DO UPDATE SET last_seq = EXCLUDED.last_seq",
        session_id,
        run_id,
        last_seq,
    )
    await announce(db, run_id)


async def announce(db: asyncpg.Pool, run_id: uuid.UUID) -> None:
    """What ingest does after each commit: tell live streams the run changed."""
    await db.execute("SELECT pg_notify($1, $2)", CHANGED_RUNS_CHANNEL, str(run_id))
