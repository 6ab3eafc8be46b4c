"""The driver log of a submitted run: appended while the script runs, read from a byte offset.

The SDK appends what the script printed every few seconds with
``PUT /api/runs/{run_id}/logs/driver?offset=N``; ``wait_for_completion(show_output=True)``
reads it back with ``GET`` from the offset it has shown.

Each append is stored as one file of the run, ``logs/driver.log.parts/<offset>``
(16 digits), in the content-addressed store; the log is those parts end to
end. An append costs what it adds (re-uploading the whole log every few
seconds would cost its square), needs no new table, and is idempotent: the
same bytes at the same offset again are a no-op, so a client that lost an
answer just repeats the request. Only an append at the log's current end (or
a repeat) is accepted, so the parts never overlap or leave a gap.

A read takes the run's status *before* the parts: the SDK appends the last
part before it publishes the final status, so a terminal status read first
means the parts read after it are the whole log.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from runstream.events import TERMINAL_STATUSES

from ._artifacts import ArtifactStore
from ._db import FileRecord
from ._errors import BadRequest, Conflict, NotFound
from ._json import json_response
from ._state import ARTIFACTS, DATABASE
from ._validate import parse_int, parse_run_id
from ._web_files import store_body

__all__ = ["PARTS_PREFIX", "routes"]

routes = web.RouteTableDef()

PARTS_PREFIX: Final = "logs/driver.log.parts/"
_PART: Final = re.compile(r"logs/driver\.log\.parts/([0-9]{16})")
_ROUTE: Final = "/api/runs/{run_id}/logs/driver"
MAX_OFFSET: Final = 10**12 - 1
DEFAULT_READ_BYTES: Final = 1 << 20
MAX_READ_BYTES: Final = 1 << 24
# Room for one whole UTF-8 character, so a read always moves on.
MIN_READ_BYTES: Final = 4


@dataclass(frozen=True, slots=True)
class _Part:
    offset: int
    size: int
    digest: str

    @property
    def end(self) -> int:
        return self.offset + self.size


def _parts(files: Sequence[FileRecord]) -> list[_Part]:
    """The log's parts from offset 0 up to the first gap (files written by hand under the prefix)."""
    by_offset = {}
    for f in files:
        match = _PART.fullmatch(f.name)
        if match:
            by_offset[int(match[1])] = _Part(int(match[1]), f.size, f.digest)
    parts: list[_Part] = []
    end = 0
    while end in by_offset and by_offset[end].size > 0:
        parts.append(by_offset[end])
        end = parts[-1].end
    return parts


def _offset(request: web.Request, *, required: bool) -> int:
    raw = request.query.get("offset")
    if raw is None and required:
        raise BadRequest("offset is required: the log's size, where the bytes go", parameter="offset")
    return parse_int(raw, "offset", default=0, minimum=0, maximum=MAX_OFFSET)


async def _read(store: ArtifactStore, parts: Sequence[_Part], start: int, limit: int) -> bytes:
    """Up to ``limit`` bytes of the log from ``start``."""
    out = bytearray()
    for part in parts:
        if len(out) >= limit:
            break
        if part.end <= start:
            continue
        blob = await store.get(part.digest)
        wanted = min(limit - len(out), part.end - max(start, part.offset))
        async for chunk in store.read(blob, offset=max(0, start - part.offset), length=wanted, chunk_bytes=wanted):
            out += chunk
    return bytes(out)


def _complete_utf8(data: bytes) -> int:
    """The length of ``data`` without a UTF-8 character cut off at its end."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return len(data)
        if byte >= 0xC0:  # the lead byte: how long its sequence should be
            needed = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return len(data) if back >= needed else len(data) - back
    return len(data)


@routes.get(_ROUTE)
async def read_driver_log(request: web.Request) -> web.Response:
    """The log from ``offset`` on, at most ``limit`` bytes, as text; see the OpenAPI description."""
    run_id = parse_run_id(request.match_info["run_id"])
    offset = _offset(request, required=False)
    limit = parse_int(
        request.query.get("limit"), "limit", default=DEFAULT_READ_BYTES, minimum=MIN_READ_BYTES, maximum=MAX_READ_BYTES
    )
    db = request.app[DATABASE]
    run = await db.get_run(run_id)  # before the parts: see the module docstring
    parts = _parts(await db.list_files(run_id))
    if run is None and not parts:
        raise NotFound(f"no run {run_id}", code="run_not_found", parameter="run_id")
    size = parts[-1].end if parts else 0
    if offset > size:
        raise BadRequest(f"offset {offset} is beyond the end of the log ({size} bytes)", parameter="offset")
    status = run["status"] if run is not None else None
    terminal = status in TERMINAL_STATUSES
    data = await _read(request.app[ARTIFACTS], parts, offset, limit)
    if not (terminal and offset + len(data) == size):
        # The rest of a character cut at the end comes with the next read.
        data = data[: _complete_utf8(data)]
    next_offset = offset + len(data)
    return json_response(
        {
            "offset": offset,
            "next_offset": next_offset,
            "size": size,
            "status": status,
            "terminal": terminal,
            "done": terminal and next_offset == size,
            "text": data.decode("utf-8", errors="replace"),
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
    parts = _parts(await request.app[DATABASE].list_files(run_id))
    size = parts[-1].end if parts else 0
    if offset != size and offset not in {p.offset for p in parts}:
        raise Conflict(
            f"the driver log has {size} bytes: append at offset {size}", code="offset_mismatch", parameter="offset"
        )
    record = await store_body(
        request, run_id, f"{PARTS_PREFIX}{offset:016d}", content_type="text/plain; charset=utf-8", overwrite=False
    )
    return json_response({"offset": offset, "next_offset": offset + record.size}, status=201)
