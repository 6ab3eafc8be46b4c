"""JSON out with orjson: :func:`json_response` for ordinary answers, :func:`stream_json` for points.

An answer of a million points is about 40 MB of JSON, and ``orjson.dumps``
grows its buffer by doubling, so building it whole takes twice that on top
of the columns it is made from. :func:`stream_json` writes the same document
in pieces instead: the structure as it goes, and long arrays (numpy columns,
lists of values) :data:`_SLICE` elements at a time, letting the event loop
serve other requests between pieces. What it holds beyond the data is one
piece (a few MB); the answer is sent chunked, without a Content-Length.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import numpy as np
import orjson
from aiohttp import web

__all__ = ["json_response", "stream_json"]

_OPTIONS: Final = orjson.OPT_SERIALIZE_NUMPY
#: Elements of a long array encoded at once when streaming.
_SLICE: Final = 65_536
#: Lists up to this long that hold containers are written item by item.
_WALK_ITEMS: Final = 1024
#: Bytes gathered before a piece is written.
_PIECE_BYTES: Final = 1 << 20


def json_response(data: Any, *, status: int = 200) -> web.Response:
    """``data`` must already be JSON-safe (non-finite floats tagged by ``encode_json_value``).

    orjson would write NaN as ``null``; handlers encode them first, so a stray
    one here is a bug that shows as ``null`` rather than as invalid JSON.
    numpy arrays are written as JSON arrays, without a Python object per
    element (a million-point series page).
    """
    body = orjson.dumps(data, option=_OPTIONS)
    return web.Response(status=status, body=body, content_type="application/json")


class _Pieces:
    def __init__(self, response: web.StreamResponse) -> None:
        self._response = response
        self._parts: list[bytes | memoryview] = []
        self._size = 0

    async def add(self, data: bytes | memoryview) -> None:
        self._parts.append(data)
        self._size += len(data)
        if self._size >= _PIECE_BYTES:
            await self.flush()

    async def flush(self) -> None:
        if self._parts:
            await self._response.write(b"".join(self._parts))
            self._parts, self._size = [], 0
            await asyncio.sleep(0)  # a turn for the rest of the service between pieces

    async def value(self, value: Any) -> None:
        if isinstance(value, dict):
            await self.add(b"{")
            for i, (key, item) in enumerate(value.items()):
                await self.add((b"," if i else b"") + orjson.dumps(key) + b":")
                await self.value(item)
            await self.add(b"}")
        elif isinstance(value, list) and _few_containers(value):
            await self.add(b"[")
            for i, item in enumerate(value):
                await self.add(b"," if i else b"")
                await self.value(item)
            await self.add(b"]")
        elif isinstance(value, list | np.ndarray):
            await self.add(b"[")
            for start in range(0, len(value), _SLICE):
                if start:
                    await self.add(b",")
                # A view without the slice's brackets: the piece's join is the one copy of its text.
                await self.add(memoryview(orjson.dumps(value[start : start + _SLICE], option=_OPTIONS))[1:-1])
            await self.add(b"]")
        else:
            await self.add(orjson.dumps(value, option=_OPTIONS))


def _few_containers(values: list[Any]) -> bool:
    """A short list holding dicts or arrays (the series of a comparison): walked item by item.

    A long list (values, with a ``$float`` dict here and there) is sliced instead.
    """
    return len(values) <= _WALK_ITEMS and any(isinstance(v, dict | list | np.ndarray) for v in values)


async def stream_json(request: web.Request, data: Any) -> web.StreamResponse:
    """Send ``data`` (JSON-safe, as for :func:`json_response`) as a 200 answer written in pieces."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    pieces = _Pieces(response)
    try:
        await pieces.value(data)
        await pieces.flush()
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client went away: nothing left to answer
    return response
