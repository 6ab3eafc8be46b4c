"""PostgreSQL connection URLs: another database on the same server, and what a refused connection means.

A DSN may carry a query (``?passfile=...&sslmode=verify-full&sslrootcert=...``)
whose values hold slashes, so a database is swapped by parsing the URL, never
by splitting the string at its last ``/``.

:func:`postgres_setup_error` tells a connection that a setting makes fail (a
refused password, an unknown CA, a server without TLS) from one that a
retry may fix (a server that is starting or down), so that callers which
retry stop at once with a line that names ``RUNSTREAM_DATABASE_URL``.
"""

from __future__ import annotations

import ssl
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import asyncpg

__all__ = ["database_of", "postgres_setup_error", "user_of", "with_database"]


def with_database(dsn: str, database: str) -> str:
    """``dsn`` with its database replaced by ``database`` (user, host, passfile, TLS options kept)."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + quote(database, safe="")))


def database_of(dsn: str) -> str:
    """The database a DSN names ('' if none)."""
    return unquote(urlsplit(dsn).path.lstrip("/"))


def user_of(dsn: str) -> str:
    """The user a DSN names ('' if none)."""
    return unquote(urlsplit(dsn).username or "")


def postgres_setup_error(exc: BaseException) -> str | None:
    """A one-line explanation naming ``RUNSTREAM_DATABASE_URL`` if ``exc`` comes from a setting; else None."""
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError) and "no encryption" in str(exc):
        return (
            f"RUNSTREAM_DATABASE_URL: the server takes only TLS connections ({exc}):"
            " add sslmode=verify-full&sslrootcert=<its CA file>"
        )
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):  # incl. a wrong password (28P01)
        return f"RUNSTREAM_DATABASE_URL: the server refused the login: {exc} (check the user and its passfile)"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return f"RUNSTREAM_DATABASE_URL: {exc}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"RUNSTREAM_DATABASE_URL: the server's certificate was refused ({exc.verify_message}):"
            " check sslrootcert= and that the host name is the one in its certificate"
        )
    if isinstance(exc, ssl.SSLError):
        return f"RUNSTREAM_DATABASE_URL: the TLS handshake failed ({exc.reason or exc})"
    if isinstance(exc, ConnectionError) and "rejected SSL upgrade" in str(exc):
        return f"RUNSTREAM_DATABASE_URL: sslmode asks for TLS and the server has none ({exc})"
    return None
