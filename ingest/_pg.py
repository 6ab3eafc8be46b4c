"""The one name for a PostgreSQL connection as asyncpg hands them out: plain, or a pool's proxy."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

__all__ = ["Conn"]

if TYPE_CHECKING:  # generic in asyncpg's stubs only
    Conn: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
else:
    Conn = asyncpg.Connection | PoolConnectionProxy
