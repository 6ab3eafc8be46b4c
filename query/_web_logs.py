"""The driver log of a submitted run: appended while the script runs, read from a byte offset.

The SDK appends what the script printed every few seconds with
``PUT /api/runs/{run_id}/logs/driver?offset=N``; ``wait_for_completion(show_output=True)``
reads it back with ``GET`` from the offset it has shown. How the log is
stored (one file of the run per append) is :mod:`._driver_log`'s.

A read takes the run's status *before* the parts: the SDK appends the last
part before it publishes the final status, so a terminal status read first
means the parts read after it are the whole log.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from runstream.events import TERMINAL_STATUSES

from ._driver_log import log_size, log_text, part_name, read_log
from ._errors import BadRequest, Conflict, NotFound
from ._json import json_response
from ._limits import DEFAULT_LOG_READ_BYTES, MAX_LOG_OFFSET, MAX_LOG_READ_BYTES, MIN_LOG_READ_BYTES
from ._run_files import store_body
from ._state import DATABASE
from ._validate import parse_int, parse_run_id

__all__ = ["routes"]

routes = web.RouteTableDef()

_ROUTE: Final = "/api/runs/{run_id}/logs/driver"


def _offset(request: web.Request, *, required: bool) -> int:
    raw = request.query.get("offset")
    if raw is None and required:
        raise BadRequest("offset is required: the log's size, where the bytes go", parameter="offset")
    return parse_int(raw, "offset", default=0, minimum=0, maximum=MAX_LOG_OFFSET)


@routes.get(_ROUTE)
async def read_driver_log(request: web.Request) -> web.Response:
    """The log from ``offset`` on, at most ``limit`` bytes, as text; see the OpenAPI description."""
    run_id = parse_run_id(request.match_info["run_id"])
    offset = _offset(request, required=False)
    limit = parse_int(
        request.query.get("limit"),
        "limit",
        default=DEFAULT_LOG_READ_BYTES,
        minimum=MIN_LOG_READ_BYTES,
        maximum=MAX_LOG_READ_BYTES,
    )
    run = await request.app[DATABASE].get_run(run_id)  # before the parts: see the module docstring
    size = await log_size(request.app, run_id)
    if run is None and size == 0:
        raise NotFound(f"no run {run_id}", code="run_not_found", parameter="run_id")
    if offset > size:
        raise BadRequest(f"offset {offset} is beyond the end of the log ({size} bytes)", parameter="offset")
    status = run["status"] if run is not None else None
    terminal = status in TERMINAL_STATUSES
    end = min(size, offset + limit)
    log = log_text(offset, await read_log(request.app, run_id, offset, end, final=terminal and end == size), size)
    return json_response(
        {
            "offset": log.offset,
            "next_offset": log.next_offset,
            "size": size,
            "status": status,
            "terminal": terminal,
            "done": terminal and log.next_offset == size,
            "text": log.text,
        }
    )


@routes.put(_ROUTE)
async def append_driver_log(request: web.Request) -> web.Response:
    """Append the body at ``offset``, which must be the log's size (or repeat an earlier append)."""
    run_id = parse_run_id(request.match_info["run_id"])
    offset = _offset(request, required=True)
    if not request.content_length:
        # Also refuses a chunked body: an empty part would hold its offset for nothing.
        raise BadRequest("an append needs a non-empty body with a Content-Length", parameter="body")
    size = await log_size(request.app, run_id)
    if offset != size and await request.app[DATABASE].get_file(run_id, part_name(offset)) is None:
        raise Conflict(
            f"the driver log has {size} bytes: append at offset {size}", code="offset_mismatch", parameter="offset"
        )
    record = await store_body(
        request, run_id, part_name(offset), content_type="text/plain; charset=utf-8", overwrite=False
    )
    return json_response({"offset": offset, "next_offset": offset + record.size}, status=201)
