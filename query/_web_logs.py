"""The driver log of a submitted run: appended while the script runs, read from a byte offset.

The SDK appends what the script printed every few seconds with
``PUT /api/runs/{run_id}/logs/driver?offset=N``; ``wait_for_completion(show_output=True)``
reads it back with ``GET`` from the offset it has shown.

Each append is stored as one file of the run, ``logs/driver.log.parts/<offset>``
(16 digits), in the content-addressed store; the log is those parts end to
end. An append costs what it adds (re-uploading the whole log every few
seconds would cost its square), needs no new table, and is idempotent: the
same bytes at the same offset again are a no-op, so a client that lost an
answer just repeats the request. Only this module writes under that prefix
(the files API refuses it) and only at the log's current end (or a repeat),
so the parts never overlap or leave a gap, and a read fetches just the last
part (for the size) and the parts it returns, however long the log.

A read takes the run's status *before* the parts: the SDK appends the last
part before it publishes the final status, so a terminal status read first
means the parts read after it are the whole log.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import asyncpg
from aiohttp import web

from runstream.events import TERMINAL_STATUSES

from ._artifacts import ArtifactStore
from ._errors import BadRequest, Conflict, NotFound
from ._json import json_response
from ._limits import DEFAULT_LOG_READ_BYTES, MAX_LOG_OFFSET, MAX_LOG_READ_BYTES, MIN_LOG_READ_BYTES
from ._state import ARTIFACTS, DATABASE
from ._validate import parse_int, parse_run_id
from ._web_files import DRIVER_LOG_PARTS, store_body

__all__ = ["PARTS", "DriverLogParts", "LogText", "read_tail", "routes"]

routes = web.RouteTableDef()

_ROUTE: Final = "/api/runs/{run_id}/logs/driver"


def _name(offset: int) -> str:
    # Fixed width: in the C collation the names sort as their offsets do.
    return f"{DRIVER_LOG_PARTS}{offset:016d}"


@dataclass(frozen=True, slots=True)
class _Part:
    offset: int
    size: int
    digest: str

    @property
    def end(self) -> int:
        return self.offset + self.size


def _part(record: asyncpg.Record) -> _Part:
    return _Part(int(record["name"][len(DRIVER_LOG_PARTS) :]), record["size"], record["digest"])


class DriverLogParts:
    """The parts of driver logs in ``files``; holds a pool it does not own."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def size(self, run_id: uuid.UUID) -> int:
        """The log's length: where its last part ends (0 without parts)."""
        record = await self._pool.fetchrow(
            "SELECT name, size, digest FROM files WHERE run_id = $1 AND starts_with(name, $2)"
            ' ORDER BY name COLLATE "C" DESC LIMIT 1',
            run_id,
            DRIVER_LOG_PARTS,
        )
        return _part(record).end if record is not None else 0

    async def covering(self, run_id: uuid.UUID, start: int, end: int) -> list[_Part]:
        """The parts that hold bytes ``start`` up to ``end``, in order."""
        records = await self._pool.fetch(
            """
            SELECT name, size, digest FROM (
                (SELECT name, size, digest FROM files
                 WHERE run_id = $1 AND starts_with(name, $2) AND name COLLATE "C" <= $3
                 ORDER BY name COLLATE "C" DESC LIMIT 1)
                UNION ALL
                SELECT name, size, digest FROM files
                WHERE run_id = $1 AND starts_with(name, $2) AND name COLLATE "C" > $3 AND name COLLATE "C" < $4
            ) p ORDER BY name COLLATE "C"
            """,
            run_id,
            DRIVER_LOG_PARTS,
            _name(start),
            _name(end),
        )
        return [_part(r) for r in records]


PARTS: Final = web.AppKey("driver_log_parts", DriverLogParts)


def _offset(request: web.Request, *, required: bool) -> int:
    raw = request.query.get("offset")
    if raw is None and required:
        raise BadRequest("offset is required: the log's size, where the bytes go", parameter="offset")
    return parse_int(raw, "offset", default=0, minimum=0, maximum=MAX_LOG_OFFSET)


async def _read(store: ArtifactStore, parts: Sequence[_Part], start: int, end: int) -> bytes:
    """The log's bytes from ``start`` up to ``end``, out of ``parts`` (which hold them)."""
    out = bytearray()
    for part in parts:
        first = max(start, part.offset)
        wanted = min(end, part.end) - first
        if wanted <= 0:
            continue
        blob = await store.get(part.digest)
        async for chunk in store.read(blob, offset=first - part.offset, length=wanted, chunk_bytes=wanted):
            out += chunk
    return bytes(out)


@dataclass(frozen=True, slots=True)
class LogText:
    """The log's bytes ``offset`` up to ``next_offset`` as text, out of a log of ``size`` bytes."""

    offset: int
    next_offset: int
    size: int
    text: str


async def _read_bytes(app: web.Application, run_id: uuid.UUID, start: int, end: int, *, final: bool) -> bytes:
    """The log's bytes from ``start`` up to ``end``; unless ``final``, without a character cut at the end.

    ``final``: ``end`` is the end of a log that will not grow, so nothing is
    coming to complete a cut character (it shows as a replacement character).
    """
    data = await _read(app[ARTIFACTS], await app[PARTS].covering(run_id, start, end), start, end)
    # The rest of a character cut at the end comes with the next read.
    return data if final else data[: _complete_utf8(data)]


def _text(offset: int, data: bytes, size: int) -> LogText:
    # A log is whatever the script wrote: bytes that are not UTF-8 show as replacement characters.
    return LogText(offset, offset + len(data), size, data.decode("utf-8", errors="replace"))


async def read_tail(app: web.Application, run_id: uuid.UUID, max_bytes: int, *, terminal: bool) -> LogText:
    """The last ``max_bytes`` of the log, or less: clipped, it starts at a line (or at least a character)."""
    size = await app[PARTS].size(run_id)
    start = max(0, size - max_bytes)
    data = await _read_bytes(app, run_id, start, size, final=terminal)
    skip = _line_start(data) if start else 0
    return _text(start + skip, data[skip:], size)


def _line_start(data: bytes) -> int:
    """Where text cut from the middle of a log should begin: after its first newline, else its first character."""
    newline = data.find(b"\n")
    if 0 <= newline < len(data) - 1:
        return newline + 1
    # No line starts in it: skip the continuation bytes of a character cut in two.
    skip = 0
    while skip < min(3, len(data)) and data[skip] & 0xC0 == 0x80:
        skip += 1
    return skip


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
        request.query.get("limit"),
        "limit",
        default=DEFAULT_LOG_READ_BYTES,
        minimum=MIN_LOG_READ_BYTES,
        maximum=MAX_LOG_READ_BYTES,
    )
    run = await request.app[DATABASE].get_run(run_id)  # before the parts: see the module docstring
    parts = request.app[PARTS]
    size = await parts.size(run_id)
    if run is None and size == 0:
        raise NotFound(f"no run {run_id}", code="run_not_found", parameter="run_id")
    if offset > size:
        raise BadRequest(f"offset {offset} is beyond the end of the log ({size} bytes)", parameter="offset")
    status = run["status"] if run is not None else None
    terminal = status in TERMINAL_STATUSES
    end = min(size, offset + limit)
    log = _text(offset, await _read_bytes(request.app, run_id, offset, end, final=terminal and end == size), size)
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
    size = await request.app[PARTS].size(run_id)
    if offset != size and await request.app[DATABASE].get_file(run_id, _name(offset)) is None:
        raise Conflict(
            f"the driver log has {size} bytes: append at offset {size}", code="offset_mismatch", parameter="offset"
        )
    record = await store_body(request, run_id, _name(offset), content_type="text/plain; charset=utf-8", overwrite=False)
    return json_response({"offset": offset, "next_offset": offset + record.size}, status=201)
