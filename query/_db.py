"""The query service's SQL over runs, experiments, metrics and files, behind one class over an asyncpg pool.

The other modules that run SQL each own one mechanism: reads of scalar points
(``point_chunks``, ``series`` counts) in :mod:`._points` and :mod:`._series`,
the change feed (LISTEN and its polls) in :mod:`._live`, read-after-write
waits on ``producer_sessions`` in :mod:`._consistency`, browser sessions
(``ui_sessions``) in :mod:`._sessions`, the collection of unreferenced blobs in
:mod:`._artifact_gc` and the per-digest advisory locks in :mod:`._s3_artifacts`.
Handlers run none. The service only reads ingest's tables; the tables it
writes are ``files`` (here) and ``ui_sessions``. Results come back as plain
JSON-ready dicts: times as ISO-8601 UTC strings (``2026-01-02T03:04:05.123456Z``)
or ``None``.
"""

# ruff: noqa: S608 - the f-strings only join constant SQL fragments; every value is a $n parameter.

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg
import orjson

from ._errors import Conflict
from ._metrics import SeriesData, scalar_value
from ._points import read_run_points
from ._run_search import RunSearch

__all__ = ["APPLICATION_NAME", "Database", "FileRecord", "RunPage", "create_pool", "iso"]

_RUN_COLUMNS: Final = """
    r.id, e.name AS experiment, r.display_name, r.description, r.parent_id, r.status, r.created_at, r.started_at,
    r.ended_at, r.heartbeat_at, r.error, r.tags, r.properties
"""
_TIME_FIELDS: Final = ("created_at", "started_at", "ended_at", "heartbeat_at")
#: How the service's connections show in pg_stat_activity.
APPLICATION_NAME: Final = "runstream-query"


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def _init_connection(conn: asyncpg.Connection) -> None:
    # json and jsonb as Python values (arrays of them included) instead of
    # strings; json keeps the key order of log_row/log_table columns (0006).
    for type_name in ("jsonb", "json"):
        await conn.set_type_codec(
            type_name,
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
            format="text",
        )


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    # JIT compilation costs more than it saves on these short queries; a statement
    # that runs away is cancelled rather than left holding a pooled connection.
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        server_settings={"jit": "off", "statement_timeout": "60s", "application_name": APPLICATION_NAME},
    )
    return pool


def _run_dict(record: asyncpg.Record) -> dict[str, Any]:
    run = dict(record)
    run["id"] = str(run["id"])
    run["parent_id"] = str(run["parent_id"]) if run["parent_id"] is not None else None
    for key in _TIME_FIELDS:
        run[key] = iso(run[key])
    return run


@dataclass(frozen=True, slots=True)
class RunPage:
    runs: list[dict[str, Any]]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class FileRecord:
    name: str
    size: int
    digest: str
    content_type: str
    created_at: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size": self.size,
            "digest": self.digest,
            "content_type": self.content_type,
            "created_at": self.created_at,
        }


def _file(record: asyncpg.Record) -> FileRecord:
    return FileRecord(
        record["name"], record["size"], record["digest"], record["content_type"], iso(record["created_at"])
    )


class Database:
    """The queries; holds a pool it does not own (the app's cleanup context does)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # --- runs -------------------------------------------------------------

    async def get_run(self, run_id: uuid.UUID) -> dict[str, Any] | None:
        record = await self._pool.fetchrow(
            f"SELECT {_RUN_COLUMNS} FROM runs r JOIN experiments e ON e.id = r.experiment_id WHERE r.id = $1",
            run_id,
        )
        return _run_dict(record) if record is not None else None

    async def descendants(self, run_id: uuid.UUID) -> list[uuid.UUID]:
        """Children, grandchildren... of the run, breadth-first, oldest first within a level."""
        records = await self._pool.fetch(
            """
            WITH RECURSIVE tree (id, depth, created_at) AS (
                SELECT r.id, 1, r.created_at FROM runs r WHERE r.parent_id = $1
                UNION
                SELECT r.id, t.depth + 1, r.created_at FROM runs r JOIN tree t ON r.parent_id = t.id
                WHERE t.depth < 100
            )
            SELECT id FROM tree WHERE id <> $1 GROUP BY id ORDER BY min(depth), min(created_at), id
            """,
            run_id,
        )
        return [r["id"] for r in records]

    async def run_has_data(self, run_id: uuid.UUID) -> bool:
        """Whether anything at all is stored for the run (metrics may precede its run_started)."""
        known: bool = await self._pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM runs WHERE id = $1) OR EXISTS (SELECT 1 FROM series WHERE run_id = $1)",
            run_id,
        )
        return known

    async def list_runs(self, search: RunSearch, *, include_metrics: bool = False) -> RunPage:
        """One page of the search; ``include_metrics`` adds each run's latest scalar values."""
        statement, args = search.sql(_RUN_COLUMNS)
        records = await self._pool.fetch(statement, *args)
        more = len(records) > search.limit
        records = records[: search.limit]
        runs = []
        for record in records:
            run = _run_dict(record)
            del run["sort_created"], run["sort_value"]
            runs.append(run)
        if include_metrics and runs:
            latest = await self.latest_metrics([r["id"] for r in records])
            for run in runs:
                run["metrics"] = latest.get(run["id"], {})
        return RunPage(runs, RunSearch.next_cursor(records[-1]) if more else None)

    async def latest_metrics(self, run_ids: Sequence[uuid.UUID]) -> dict[str, dict[str, Any]]:
        """``{run_id: {metric: last value}}`` for scalar metrics, from ingest's per-series summary."""
        records = await self._pool.fetch(
            """
            SELECT s.run_id, s.name, s.value_type, s.last_value, s.last_text
            FROM series s
            WHERE s.run_id = ANY($1::uuid[]) AND s.kind = 'scalar' AND s.point_count > 0
            ORDER BY s.run_id, s.name
            """,
            list(run_ids),
        )
        out: dict[str, dict[str, Any]] = {}
        for r in records:
            value = scalar_value(r["value_type"], r["last_value"], r["last_text"])
            out.setdefault(str(r["run_id"]), {})[r["name"]] = value
        return out

    async def list_experiments(self) -> list[dict[str, Any]]:
        records = await self._pool.fetch(
            """
            SELECT e.name, e.created_at, count(r.id) AS run_count,
                   greatest(max(r.created_at), max(r.started_at), max(r.ended_at), max(r.heartbeat_at),
                            max(r.seen_at)) AS last_activity
            FROM experiments e LEFT JOIN runs r ON r.experiment_id = e.id
            GROUP BY e.id
            ORDER BY last_activity DESC NULLS LAST, e.name
            """
        )
        return [
            {
                "name": r["name"],
                "run_count": r["run_count"],
                "created_at": iso(r["created_at"]),
                "last_activity": iso(r["last_activity"] or r["created_at"]),
            }
            for r in records
        ]

    async def experiment_exists(self, name: str) -> bool:
        found: bool = await self._pool.fetchval("SELECT EXISTS (SELECT 1 FROM experiments WHERE name = $1)", name)
        return found

    # --- metrics ----------------------------------------------------------

    async def series_overview(self, run_id: uuid.UUID) -> list[dict[str, Any]]:
        """Every series of the run with ingest's summary (count, last value), no points."""
        records = await self._pool.fetch(
            "SELECT id, name, kind, value_type, point_count, last_value, last_text FROM series"
            " WHERE run_id = $1 ORDER BY name",
            run_id,
        )
        return [dict(r) for r in records]

    async def point_count(self, run_ids: Sequence[uuid.UUID], name: str | None = None) -> int | None:
        """Points and entries stored in the runs' series (or their series ``name``); ``None`` if there is none."""
        total: int | None = await self._pool.fetchval(
            "SELECT sum(point_count) FROM series WHERE run_id = ANY($1::uuid[]) AND ($2::text IS NULL OR name = $2)",
            list(run_ids),
            name,
        )
        return None if total is None else int(total)

    async def series(
        self, run_id: uuid.UUID, name: str | None = None, *, with_scalars: bool = True
    ) -> list[SeriesData]:
        """Each series of the run (or the one named) with its points or entries in logging order.

        Entries are aggregated from a subquery that reads them in order off the
        (series_id, time, position) index: PostgreSQL keeps that order into
        ``array_agg``, several times faster than an ``array_agg(... ORDER BY ...)``.
        Scalar points are decoded from their chunks in the same snapshot.
        """
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            records = await conn.fetch(
                """
                SELECT s.name, s.kind, s.value_type,
                    CASE WHEN s.kind <> 'scalar' THEN (
                        SELECT array_agg(o.value) FROM (
                            SELECT e.value FROM series_entries e WHERE e.series_id = s.id ORDER BY e.time, e.position
                        ) o) END AS entries
                FROM series s
                WHERE s.run_id = $1 AND ($2::text IS NULL OR s.name = $2) AND ($3 OR s.kind <> 'scalar')
                ORDER BY s.name
                """,
                run_id,
                name,
                with_scalars,
            )
            points = await read_run_points(conn, run_id, name=name) if with_scalars else {}
        out = []
        for r in records:
            found = points.get(r["name"]) if r["kind"] == "scalar" else None
            stored = found.values.tolist() if found is not None else []
            text = r["value_type"] == "str"
            out.append(
                SeriesData(
                    name=r["name"],
                    kind=r["kind"],
                    value_type=r["value_type"],
                    values=() if text else stored,
                    texts=stored if text else (),
                    entries=r["entries"] or (),
                )
            )
        return out

    # --- files ------------------------------------------------------------

    async def list_files(self, run_id: uuid.UUID) -> list[FileRecord]:
        records = await self._pool.fetch(
            "SELECT name, size, digest, content_type, created_at FROM files WHERE run_id = $1 ORDER BY name", run_id
        )
        return [_file(r) for r in records]

    async def get_file(self, run_id: uuid.UUID, name: str) -> FileRecord | None:
        record = await self._pool.fetchrow(
            "SELECT name, size, digest, content_type, created_at FROM files WHERE run_id = $1 AND name = $2",
            run_id,
            name,
        )
        return _file(record) if record is not None else None

    async def last_file(self, run_id: uuid.UUID, prefix: str) -> FileRecord | None:
        """The run's file under ``prefix`` whose name sorts last (C collation); None if it has none."""
        record = await self._pool.fetchrow(
            "SELECT name, size, digest, content_type, created_at FROM files"
            ' WHERE run_id = $1 AND starts_with(name, $2) ORDER BY name COLLATE "C" DESC LIMIT 1',
            run_id,
            prefix,
        )
        return _file(record) if record is not None else None

    async def files_from(self, run_id: uuid.UUID, prefix: str, first: str, end: str) -> list[FileRecord]:
        """The run's files under ``prefix`` from the last one named up to ``first`` to the last before ``end``.

        In name order (C collation): for files named by offset, the one that holds
        offset ``first`` and every later one that starts before ``end``.
        """
        records = await self._pool.fetch(
            """
            SELECT name, size, digest, content_type, created_at FROM (
                (SELECT name, size, digest, content_type, created_at FROM files
                 WHERE run_id = $1 AND starts_with(name, $2) AND name COLLATE "C" <= $3
                 ORDER BY name COLLATE "C" DESC LIMIT 1)
                UNION ALL
                SELECT name, size, digest, content_type, created_at FROM files
                WHERE run_id = $1 AND starts_with(name, $2) AND name COLLATE "C" > $3 AND name COLLATE "C" < $4
            ) p ORDER BY name COLLATE "C"
            """,
            run_id,
            prefix,
            first,
            end,
        )
        return [_file(r) for r in records]

    async def add_file(
        self, run_id: uuid.UUID, name: str, *, digest: str, size: int, content_type: str, overwrite: bool
    ) -> FileRecord:
        """Record a file; the same content again is a no-op, other content needs ``overwrite``."""
        async with self._pool.acquire() as conn, conn.transaction():
            existing = await conn.fetchrow(
                "SELECT name, size, digest, content_type, created_at FROM files"
                " WHERE run_id = $1 AND name = $2 FOR UPDATE",
                run_id,
                name,
            )
            if existing is not None and existing["digest"] == digest and existing["content_type"] == content_type:
                return _file(existing)
            conflict = Conflict(
                f"file {name!r} already exists in run {run_id} with other content; add ?overwrite=true to replace it",
                code="file_exists",
                parameter="name",
            )
            if existing is not None and not overwrite:
                raise conflict
            # The WHERE covers a row that a concurrent upload inserted after our SELECT.
            record = await conn.fetchrow(
                """
                INSERT INTO files (run_id, name, digest, size, content_type) VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (run_id, name) DO UPDATE
                    SET digest = EXCLUDED.digest, size = EXCLUDED.size,
                        content_type = EXCLUDED.content_type, created_at = now()
                    WHERE $6 OR (files.digest = EXCLUDED.digest AND files.content_type = EXCLUDED.content_type)
                RETURNING name, size, digest, content_type, created_at
                """,
                run_id,
                name,
                digest,
                size,
                content_type,
                overwrite,
            )
            if record is None:
                raise conflict
            return _file(record)
