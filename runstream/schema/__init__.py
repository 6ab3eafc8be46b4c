"""Versioned, idempotent schema migrations (the SQL files in ``migrations/``).

Each file ``NNNN_name.sql`` is applied once, in order, in its own transaction,
and recorded in ``schema_migrations``. An advisory lock serialises concurrent
``migrate`` calls (several workers starting at once).
"""

from __future__ import annotations

import re
from importlib import resources

import asyncpg

__all__ = ["migrate"]

_LOCK_KEY = 0x72756E73  # "runs": any fixed key shared by every migrator
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def _migrations() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files("runstream.schema").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


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
