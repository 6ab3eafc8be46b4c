"""Driver-log storage: the parts of a submitted run's log and reads across them (the handlers are ``_web_logs``).

Each append is stored as one file of the run, ``logs/driver.log.parts/<offset>``
(16 digits), in the content-addressed store; the log is those parts end to
end. An append costs what it adds (re-uploading the whole log every few
seconds would cost its square), needs no new table, and is idempotent: the
same bytes at the same offset again are a no-op, so a client that lost an
answer just repeats the request. Only ``_web_logs`` writes under that prefix
(the files API refuses it) and only at the log's current end (or a repeat),
so the parts never overlap or leave a gap, and a read fetches just the last
part (for the size) and the parts it returns, however long the log. Their
SQL is :class:`._db.Database`'s, like every statement of the service.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from ._artifacts import ArtifactStore
from ._db import FileRecord
from ._state import ARTIFACTS, DATABASE

__all__ = ["DRIVER_LOG_PARTS", "LogText", "log_size", "log_text", "part_name", "read_log", "read_tail"]

#: Where the driver log's appends are kept; only ``_web_logs`` writes there.
DRIVER_LOG_PARTS: Final = "logs/driver.log.parts/"


def part_name(offset: int) -> str:
    """The file holding the part that starts at ``offset``."""
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


def _part(record: FileRecord) -> _Part:
    return _Part(int(record.name[len(DRIVER_LOG_PARTS) :]), record.size, record.digest)


async def log_size(app: web.Application, run_id: uuid.UUID) -> int:
    """The log's length: where its last part ends (0 without parts)."""
    last = await app[DATABASE].last_file(run_id, DRIVER_LOG_PARTS)
    return _part(last).end if last is not None else 0


async def _covering(app: web.Application, run_id: uuid.UUID, start: int, end: int) -> list[_Part]:
    """The parts that hold bytes ``start`` up to ``end``, in order."""
    files = await app[DATABASE].files_from(run_id, DRIVER_LOG_PARTS, part_name(start), part_name(end))
    return [_part(f) for f in files]


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


async def read_log(app: web.Application, run_id: uuid.UUID, start: int, end: int, *, final: bool) -> bytes:
    """The log's bytes from ``start`` up to ``end``; unless ``final``, without a character cut at the end.

    ``final``: ``end`` is the end of a log that will not grow, so nothing is
    coming to complete a cut character (it shows as a replacement character).
    """
    data = await _read(app[ARTIFACTS], await _covering(app, run_id, start, end), start, end)
    # The rest of a character cut at the end comes with the next read.
    return data if final else data[: _complete_utf8(data)]


def log_text(offset: int, data: bytes, size: int) -> LogText:
    # A log is whatever the script wrote: bytes that are not UTF-8 show as replacement characters.
    return LogText(offset, offset + len(data), size, data.decode("utf-8", errors="replace"))


async def read_tail(app: web.Application, run_id: uuid.UUID, max_bytes: int, *, terminal: bool) -> LogText:
    """The last ``max_bytes`` of the log, or less: clipped, it starts at a line (or at least a character)."""
    size = await log_size(app, run_id)
    start = max(0, size - max_bytes)
    data = await read_log(app, run_id, start, size, final=terminal)
    skip = _line_start(data) if start else 0
    return log_text(start + skip, data[skip:], size)


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
