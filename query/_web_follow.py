"""``GET /api/changes/stream``: committed points and run changes as Server-Sent Events, resumable.

Query parameters (see :mod:`._follow`): ``experiment``, ``run`` (repeatable),
``metric`` (names or globs, repeatable), ``tag`` (``key`` or ``key:value``,
repeatable, all must hold), ``from`` (``now``, the default, or ``start``) and
``cursor``; a reconnecting ``EventSource`` sends ``Last-Event-ID`` instead.
At least one of ``experiment`` and ``run`` is required.

Events (``data`` is JSON, non-finite floats ``$float``-tagged), each with the
cursor after it as its ``id``:

* ``ready``: ``{}``, first, so that a client has a cursor before any data;
* ``run``: a run's details (as ``GET /api/runs/{run_id}``) when first seen and
  whenever its status, end, tags, properties, name or error change;
* ``points``: ``{"run_id", "metrics": {name: {"steps", "times", "values"}}}``
  with the points stored since.

A comment line every 15 s keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import asyncpg
import orjson
from aiohttp import web

from ._errors import BadRequest
from ._follow import FOLLOW_STARTS, FollowCursor, Follower, FollowFilter, parse_metric_pattern, parse_tag
from ._sse import KEEPALIVE_SECONDS, client_gone, wait_while_connected
from ._state import DATABASE, FOLLOW_PACING, LIVE
from ._validate import parse_run_id

__all__ = ["routes"]

routes = web.RouteTableDef()
_log = logging.getLogger("query.follow")


def _frame(kind: str, data: object, cursor: str) -> bytes:
    return b"id: " + cursor.encode() + b"\nevent: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _filter(request: web.Request) -> FollowFilter:
    experiment = request.query.get("experiment")
    if experiment == "":
        raise BadRequest("experiment is empty", parameter="experiment")
    return FollowFilter(
        experiment=experiment,
        run_ids=tuple(parse_run_id(raw, "run") for raw in request.query.getall("run", [])),
        metrics=tuple(parse_metric_pattern(raw) for raw in request.query.getall("metric", [])),
        tags=tuple(parse_tag(raw) for raw in request.query.getall("tag", [])),
    )


def _cursor(request: web.Request) -> FollowCursor | None:
    if (text := request.query.get("cursor")) is not None:
        return FollowCursor.decode(text, "cursor")
    if (text := request.headers.get("Last-Event-ID")) is not None:
        return FollowCursor.decode(text, "Last-Event-ID")
    return None


@routes.get("/api/changes/stream")
async def changes_stream(request: web.Request) -> web.StreamResponse:
    """Points and run changes of the runs the filter matches, from ``from`` or the cursor on."""
    follow, cursor = _filter(request), _cursor(request)
    start = request.query.get("from", "now")
    if start not in FOLLOW_STARTS:
        raise BadRequest(f"from must be one of {', '.join(FOLLOW_STARTS)}, got {start[:40]!r}", parameter="from")
    app = request.app
    follower = Follower(app[LIVE].pool, app[DATABASE], follow, cursor)
    if cursor is None and start == "now":
        await follower.start_at_end()
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    pacing = app[FOLLOW_PACING]
    pacing.streams += 1
    try:
        with contextlib.suppress(ConnectionResetError):  # the client went away
            await response.write(b"retry: 2000\n\n" + _frame("ready", {}, follower.cursor.encode()))
            await _follow(request, response, follower)
    finally:
        pacing.streams -= 1
    return response


async def _follow(request: web.Request, response: web.StreamResponse, follower: Follower) -> None:
    hub = request.app[LIVE]
    last_write = time.monotonic()
    while not hub.stopped and not client_gone(request):
        changed = hub.changed()  # before reading: a commit meanwhile sets it
        started = time.monotonic()
        try:
            for event, cursor in await follower.poll():
                await response.write(_frame(event.kind, event.data, cursor))
                last_write = time.monotonic()
        except (asyncpg.PostgresError, OSError) as exc:
            if isinstance(exc, ConnectionResetError):
                raise
            _log.warning("changes stream: a round failed (%s); the next one catches up", exc)
        if follower.behind:
            continue
        spacing = request.app[FOLLOW_PACING].spacing_seconds()
        await asyncio.sleep(max(0.0, spacing - (time.monotonic() - started)))
        if not changed.is_set():
            keepalive_due = max(0.0, last_write + KEEPALIVE_SECONDS - time.monotonic())
            await wait_while_connected(request, changed, min(hub.fallback_seconds, keepalive_due))
        if time.monotonic() - last_write >= KEEPALIVE_SECONDS:
            await response.write(b": keepalive\n\n")
            last_write = time.monotonic()
