"""Reads that wait for ingest: the ``Runstream-Read-After`` header (:mod:`runstream.consistency`).

Every read of the API can carry a read-after token, ``session:seq`` pairs
naming what the reader wrote. :func:`read_after_middleware` is the one place
that honours it: before the handler runs, it waits until ingest has stored
each listed session up to its seq (``producer_sessions.last_seq``, written in
the transaction that stores the records), then lets the handler read, so the
answer holds everything the token names. A read without the header passes
straight through and costs nothing more than before.

Waiting polls nothing while nothing changes: :class:`IngestProgress` reads the
sessions' stored seqs, and if one is behind it sleeps until ingest's next
commit is announced (:meth:`LiveHub.changed`, the ``runstream_changed_runs``
NOTIFY) or :data:`_RECHECK_SECONDS` pass (a notification lost while the
listening connection was down), then reads again, only the sessions still
behind. The wait is bounded by the request's ``Prefer: wait`` (capped by
:data:`~runstream.consistency.MAX_READ_WAIT_SECONDS`); when it runs out the
request is answered 503 ``ingest_behind`` with a ``lag`` member naming each
session still behind with its stored and required seq. The reader never gets
a partial answer.

``GET /api/read-after`` is the token alone: it waits the same way and answers
the stored seqs, for readers whose token is longer than one header holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

import asyncpg
from aiohttp import web

from runstream.consistency import (
    INGEST_BEHIND,
    PREFER_HEADER,
    READ_AFTER_HEADER,
    parse_read_after,
    parse_wait,
)

from ._errors import BadRequest, IngestBehind
from ._json import json_response
from ._live import LiveHub

__all__ = ["READ_AFTER", "IngestProgress", "read_after_middleware", "routes"]

routes = web.RouteTableDef()

#: Longest a waiting read goes without reading the stored seqs again, announced or not.
_RECHECK_SECONDS: Final = 1.0
#: Methods that read; a token on anything else is ignored (a write waits for nobody).
_READS: Final = frozenset({"GET", "HEAD"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class IngestProgress:
    """How far ingest has stored producer sessions, and waiting for it to get further."""

    def __init__(self, pool: asyncpg.Pool, hub: LiveHub, *, recheck_seconds: float = _RECHECK_SECONDS) -> None:
        self._pool = pool
        self._hub = hub
        self._recheck = recheck_seconds

    async def stored(self, sessions: list[str]) -> dict[str, int]:
        """The highest seq stored per session; a session ingest has stored nothing of is absent."""
        records = await self._pool.fetch(
            "SELECT session_id, last_seq FROM producer_sessions WHERE session_id = ANY($1::uuid[])",
            [uuid.UUID(s) for s in sessions],
        )
        return {str(r["session_id"]): r["last_seq"] for r in records}

    async def wait(self, required: Mapping[str, int], wait_seconds: float) -> dict[str, int]:
        """Until every session in ``required`` is stored up to its seq; returns the stored seqs.

        Raises :class:`IngestBehind` (with the lag) after ``wait_seconds``.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        behind = dict(required)
        seen: dict[str, int] = {}
        while True:
            changed = self._hub.changed()  # before reading: a commit from now on sets it
            seen.update(await self.stored(list(behind)))
            behind = {s: seq for s, seq in behind.items() if seen.get(s, 0) < seq}
            if not behind:
                return seen
            left = started + wait_seconds - loop.time()
            if left <= 0:
                raise _behind(required, seen, behind, loop.time() - started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(left, self._recheck))


def _behind(
    required: Mapping[str, int], seen: Mapping[str, int], behind: Mapping[str, int], waited: float
) -> IngestBehind:
    sessions = [{"session": s, "stored_seq": seen.get(s, 0), "required_seq": seq} for s, seq in behind.items()]
    shown = "; ".join(
        f"session {s['session']} stored up to seq {s['stored_seq']}, needs {s['required_seq']}" for s in sessions[:5]
    )
    more = f" (and {len(sessions) - 5} more sessions)" if len(sessions) > 5 else ""
    return IngestBehind(
        f"ingest has not stored {len(sessions)} of the {len(required)} sessions this read must see after "
        f"waiting {waited:.1f}s: {shown}{more}",
        lag={"waited_seconds": round(waited, 3), "sessions": sessions},
        code=INGEST_BEHIND,
        parameter=READ_AFTER_HEADER,
    )


READ_AFTER: Final = web.AppKey("read_after", IngestProgress)


def _token(request: web.Request) -> dict[str, int] | None:
    values = request.headers.getall(READ_AFTER_HEADER, [])
    if not values:
        return None
    try:
        return parse_read_after(",".join(values))  # repeated headers are one comma-separated list
    except ValueError as exc:
        raise BadRequest(f"{READ_AFTER_HEADER}: {exc}", code="bad_read_after", parameter=READ_AFTER_HEADER) from None


def _wait_seconds(request: web.Request) -> float:
    try:
        return parse_wait(request.headers.get(PREFER_HEADER))
    except ValueError as exc:
        raise BadRequest(f"{PREFER_HEADER}: {exc}", code="bad_wait", parameter=PREFER_HEADER) from None


@web.middleware
async def read_after_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Hold a read that carries a read-after token until ingest has stored what it names."""
    if request.method in _READS:
        required = _token(request)
        if required is not None:
            await request.app[READ_AFTER].wait(required, _wait_seconds(request))
    return await handler(request)


@routes.get("/api/read-after")
async def read_after(request: web.Request) -> web.Response:
    """The stored seq of each session the token names, once all have reached it (the middleware waited)."""
    required = _token(request) or {}
    stored = await request.app[READ_AFTER].stored(list(required)) if required else {}
    return json_response({"sessions": stored})
