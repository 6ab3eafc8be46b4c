"""Browser sessions: what ``/login`` hands out, what the cookie proves, and how a session ends.

A session is a row of ``ui_sessions`` (migration 0012) and a cookie
``v2.<id>.<expires>.<mac>``:

* ``id`` is 32 random bytes; the row is keyed by its SHA-256, so the table
  alone opens nothing;
* ``expires`` (epoch seconds) is ``RUNSTREAM_SESSION_MAX_AGE_SECONDS`` after
  sign-in; the browser drops the cookie then (``Max-Age``) and the service
  refuses it after then whatever the browser does;
* ``mac`` is an HMAC-SHA256 of the rest under a key derived from the cookie
  secret *and* the read token, compared in constant time. A cookie made
  without the secret is refused before the database is asked; a new secret
  (``RUNSTREAM_COOKIE_SECRET`` or its file) or a new token invalidates every
  cookie at once: rotating either signs everyone out.

``/logout`` marks the row revoked, so the cookie (and any copy of it) is
dead even before it expires. Expired rows are deleted a day after they
expire, when somebody signs in.

The secret comes from ``RUNSTREAM_COOKIE_SECRET``, or from the file
``RUNSTREAM_COOKIE_SECRET_FILE``, which must be the service user's own and
readable by nobody else (0600 or 0400); with neither, a random secret is made
at each start, so a restart signs everyone out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import asyncpg

from runstream.config import MIN_SECRET_BYTES, ConfigError, Settings, read_secret_file

__all__ = ["COOKIE", "Sessions", "cookie_secret", "session_key"]

COOKIE: Final = "runstream_session"
_VERSION: Final = "v2"
_ID_BYTES: Final = 32
#: A cookie this module makes is about 120 characters; anything much longer is refused unread.
_MAX_COOKIE_CHARS: Final = 256
_log = logging.getLogger("query")


def _read_secret_file(path: Path) -> bytes:
    variable = "RUNSTREAM_COOKIE_SECRET_FILE"
    secret = read_secret_file(path, variable).strip().encode()  # ours, 0600/0400, or refused naming it
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"{variable}: {path} holds {len(secret)} bytes; the secret must have at least {MIN_SECRET_BYTES}"
        )
    return secret


def cookie_secret(settings: Settings) -> bytes:
    """The secret that signs session cookies: from the environment, the file, or made for this start."""
    if settings.cookie_secret is not None:
        return settings.cookie_secret.encode()
    if settings.cookie_secret_file is not None:
        return _read_secret_file(settings.cookie_secret_file)
    if settings.token is not None:
        _log.info(
            "no RUNSTREAM_COOKIE_SECRET(_FILE): browser sessions are signed with a key made for this start"
            " and end when the service restarts"
        )
    return secrets.token_bytes(_ID_BYTES)


def session_key(secret: bytes, token: str) -> bytes:
    """The HMAC key of cookies: changes when either the secret or the read token does."""
    return hmac.new(secret, b"runstream session key v2\x00" + token.encode(), hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class Sessions:
    """Opens, checks and revokes sessions in ``ui_sessions`` through a pool it does not own."""

    def __init__(
        self, pool: asyncpg.Pool, *, key: bytes, max_age_seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._pool = pool
        self._key = key
        self.max_age_seconds = int(max_age_seconds)
        self._clock = clock

    def _mac(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()

    def _row_id(self, cookie: str) -> bytes | None:
        """The row a well-signed, unexpired cookie names; ``None`` for any other."""
        if len(cookie) > _MAX_COOKIE_CHARS:
            return None
        body, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(mac.encode("utf-8", "replace"), self._mac(body).encode()):
            return None
        version, _, rest = body.partition(".")
        session_id, _, expires = rest.partition(".")
        if version != _VERSION or not expires.isdigit() or int(expires) <= self._clock():
            return None
        try:
            raw = base64.urlsafe_b64decode(session_id + "=" * (-len(session_id) % 4))
        except (ValueError, binascii.Error):
            return None
        return hashlib.sha256(raw).digest()

    async def open(self) -> str:
        """A new session's cookie value, valid for ``max_age_seconds``."""
        raw = secrets.token_bytes(_ID_BYTES)
        expires = int(self._clock()) + self.max_age_seconds
        async with self._pool.acquire() as conn:
            await conn.execute("DELETE FROM ui_sessions WHERE expires_at < now() - interval '1 day'")
            await conn.execute(
                "INSERT INTO ui_sessions (id, expires_at) VALUES ($1, to_timestamp($2))",
                hashlib.sha256(raw).digest(),
                expires,
            )
        body = f"{_VERSION}.{_b64(raw)}.{expires}"
        return f"{body}.{self._mac(body)}"

    async def valid(self, cookie: str) -> bool:
        row_id = self._row_id(cookie)
        if row_id is None:
            return False
        found: bool = await self._pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM ui_sessions WHERE id = $1 AND revoked_at IS NULL AND expires_at > now())",
            row_id,
        )
        return found

    async def revoke(self, cookie: str) -> None:
        """End the session ``cookie`` names (nothing for a cookie this service did not sign)."""
        row_id = self._row_id(cookie)
        if row_id is not None:
            await self._pool.execute(
                "UPDATE ui_sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", row_id
            )
