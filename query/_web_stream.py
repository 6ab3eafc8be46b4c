"""``GET /api/runs/{run_id}/stream``: Server-Sent Events with a run's new points and status changes.

Events (``data`` is JSON, non-finite floats ``$float``-tagged):

* ``run``: the run's details (as ``GET /api/runs/{run_id}``), first on connect
  and again whenever they change (status, end, heartbeat, tags...);
* ``points``: ``{"run_id", "metrics": {name: {"steps", "times", "values"}}}``
  with the scalar points stored since the previous event.

A comment line every ``keepalive`` keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import asyncio
from typing import Final

import orjson
from aiohttp import web

from ._errors import NotFound
from ._live import LiveEvent
from ._state import DATABASE, LIVE
from ._validate import parse_run_id

__all__ = ["routes"]

routes = web.RouteTableDef()

_KEEPALIVE_SECONDS: Final = 15.0


def _frame(event: LiveEvent) -> bytes:
    return b"event: " + event.kind.encode() + b"\ndata: " + orjson.dumps(event.data) + b"\n\n"


@routes.get("/api/runs/{run_id}/stream")
async def stream(request: web.Request) -> web.StreamResponse:
    run_id = parse_run_id(request.match_info["run_id"])
    db = request.app[DATABASE]
    if not await db.run_has_data(run_id):
        raise NotFound(f"no run {run_id}", code="run_not_found", parameter="run_id")
    hub = request.app[LIVE]
    sub = await hub.subscribe(run_id)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    try:
        await response.prepare(request)
        await response.write(b"retry: 2000\n\n")
        run = await db.get_run(run_id)
        if run is not None:
            await response.write(_frame(LiveEvent("run", run)))
        while True:
            try:
                event = await asyncio.wait_for(sub.next(), _KEEPALIVE_SECONDS)
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            if event is None:
                break
            await response.write(_frame(event))
    except ConnectionResetError:
        pass  # the client went away
    finally:
        await hub.unsubscribe(run_id, sub)
    return response
