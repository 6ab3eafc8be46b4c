"""Versioned, idempotent schema migrations (the SQL files in ``migrations/``).

Each file ``NNNN_name.sql`` is applied once, in order, in its own transaction,
and recorded in ``schema_migrations``. An advisory lock serialises concurrent
``migrate`` calls (several workers starting at once).

Upgrades: ``runstream migrate`` (a Job, a compose one-shot) is the one applier
in production (``RUNSTREAM_AUTO_MIGRATE=false``); every service checks at
start that the database holds exactly the migrations its code knows
(:func:`check_schema`) and refuses to run otherwise, saying what to do: a
schema behind the code needs ``runstream migrate``; a schema ahead of it
(a newer release migrated it) needs the newer release. The query service's
``/ready`` asks the same question (:func:`schema_problem`).
"""

from __future__ import annotations

import re
from importlib import resources

import asyncpg

from runstream.config import ConfigError
from runstream.pg import Conn

__all__ = ["SchemaMismatchError", "applied_versions", "check_schema", "known_versions", "migrate", "schema_problem"]

_LOCK_KEY = 0x72756E73  # "runs": any fixed key shared by every migrator
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def _migrations() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files("runstream.schema").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


class SchemaMismatchError(ConfigError):
    """The database's schema is not the one this code was written for; the message says what to run."""


def known_versions() -> list[int]:
    """The versions of the migrations this code ships, in order."""
    return [version for version, _, _ in _migrations()]


async def applied_versions(conn: Conn) -> set[int]:
    """The versions recorded in ``schema_migrations`` (none on an empty database)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return set()
    return {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}


def schema_problem(applied: set[int], known: list[int] | None = None) -> str | None:
    """Why a database with ``applied`` migrations cannot serve this code (None: it can)."""
    known = known_versions() if known is None else known
    newer = sorted(applied - set(known))
    if newer:
        return (
            f"the database schema is newer than this runstream understands (migrations {newer} are applied,"
            f" this release knows up to {max(known):04d}): run the release that applied them, or restore"
            " a backup taken before the upgrade"
        )
    missing = [v for v in known if v not in applied]
    if missing:
        state = "empty" if not applied else f"at {max(applied):04d}"
        return (
            f"the database schema is {state}, this release needs {max(known):04d}"
            f" (missing {', '.join(f'{v:04d}' for v in missing)}): run `runstream migrate`"
            " (or set RUNSTREAM_AUTO_MIGRATE=true for ingest to apply them)"
        )
    return None


async def check_schema(dsn: str) -> None:
    """Raise :class:`SchemaMismatchError` unless the database holds exactly the migrations this code knows."""
    conn = await asyncpg.connect(dsn)
    try:
        problem = schema_problem(await applied_versions(conn))
    finally:
        await conn.close()
    if problem is not None:
        raise SchemaMismatchError(f"RUNSTREAM_DATABASE_URL: {problem}")


async def migrate(dsn: str, *, target: int | None = None) -> list[str]:
    """Apply pending migrations (up to version ``target``, default all) to ``dsn``; return their names."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            applied = []
            for version, name, sql in _migrations():
                if version in done or (target is not None and version > target):
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
                applied.append(name)
            return applied
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    finally:
        await conn.close()
