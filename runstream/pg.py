"""How PostgreSQL's objects are named in types, once for every package.

``Conn`` is a connection as asyncpg hands them out: plain, or a pool's proxy
(a handler or a flush holds the latter). ``Row`` is whatever a query returns
per row, read by column name: asyncpg's ``Record``, or a mapping in tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

__all__ = ["Conn", "Row"]

if TYPE_CHECKING:  # generic in asyncpg's stubs only
    Conn: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
else:
    Conn = asyncpg.Connection | PoolConnectionProxy


class Row(Protocol):
    """A row read by column name."""

    def __getitem__(self, key: str, /) -> Any: ...
