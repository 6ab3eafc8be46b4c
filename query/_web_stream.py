"""Server-Sent Events: ``/api/runs/{run_id}/stream`` (a run) and ``/api/stream?experiment=`` (its runs).

Events (``data`` is JSON, non-finite floats ``$float``-tagged):

* ``run``: the run's details (as ``GET /api/runs/{run_id}``), first on connect
  and again whenever they change (status, end, heartbeat, tags...); for a run
  not stored yet (just started), first when ingest stores its start. The first
  one also lists the run's numeric scalar metrics (``scalar_metrics``), read
  after the stream subscribed: with the ``points`` that follow, a page opened
  before a metric appeared misses nothing of it;
* ``points``: ``{"run_id", "metrics": {name: {"steps", "times", "values"}}}``
  with the scalar points stored since the previous event;
* ``runs`` (experiment streams): ``{"experiment", "runs": [run details...]}``
  for the newest runs whose status, end or heartbeat changed, or that appeared.

A comment line every ``keepalive`` keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import asyncio
import time

import orjson
from aiohttp import web

from ._errors import BadRequest, NotFound
from ._live import LiveEvent, Subscription, run_event
from ._sse import CLIENT_CHECK_SECONDS, KEEPALIVE_SECONDS, client_gone
from ._state import DATABASE, LIVE, SERIES
from ._validate import parse_run_id

__all__ = ["routes"]

routes = web.RouteTableDef()


def _frame(event: LiveEvent) -> bytes:
    return b"event: " + event.kind.encode() + b"\ndata: " + orjson.dumps(event.data) + b"\n\n"


@routes.get("/api/runs/{run_id}/stream")
async def run_stream(request: web.Request) -> web.StreamResponse:
    """A run's events; a well-formed id not stored yet (a run just started) streams from its first data on."""
    run_id = parse_run_id(request.match_info["run_id"])
    sub = await request.app[LIVE].subscribe(run_id)
    run = await request.app[DATABASE].get_run(run_id)
    if run is None:
        return await _serve(request, sub, [])
    metrics = [name for name, _ in await request.app[SERIES].scalar_metrics([run_id])]
    return await _serve(request, sub, [run_event({**run, "scalar_metrics": metrics})])


@routes.get("/api/stream")
async def experiment_stream(request: web.Request) -> web.StreamResponse:
    """``?experiment=NAME``: ``runs`` events with the experiment's runs whose status, end or heartbeat changed."""
    name = request.query.get("experiment")
    if not name:
        raise BadRequest("experiment is required", parameter="experiment")
    if not await request.app[DATABASE].experiment_exists(name):
        raise NotFound(f"no experiment {name!r}", code="experiment_not_found", parameter="experiment")
    sub = await request.app[LIVE].subscribe_experiment(name)
    return await _serve(request, sub, [])


async def _serve(request: web.Request, sub: Subscription, first: list[LiveEvent]) -> web.StreamResponse:
    hub = request.app[LIVE]
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    try:
        await response.prepare(request)
        await response.write(b"retry: 2000\n\n")
        for event in first:
            await response.write(_frame(event))
        last_write = time.monotonic()
        while not client_gone(request):
            try:
                news = await asyncio.wait_for(sub.next(), CLIENT_CHECK_SECONDS)  # a queue get: safe to cancel
            except TimeoutError:
                if time.monotonic() - last_write >= KEEPALIVE_SECONDS:
                    await response.write(b": keepalive\n\n")
                    last_write = time.monotonic()
                continue
            if news is None:
                break
            await response.write(_frame(news))
            last_write = time.monotonic()
    except ConnectionResetError:
        pass  # the client went away
    finally:
        await hub.unsubscribe(sub)
    return response
