"""JSON out with orjson: one helper every handler uses."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

__all__ = ["json_response"]


def json_response(data: Any, *, status: int = 200) -> web.Response:
    """``data`` must already be JSON-safe (non-finite floats tagged by ``encode_json_value``).

    orjson would write NaN as ``null``; handlers encode them first, so a stray
    one here is a bug that shows as ``null`` rather than as invalid JSON.
    numpy arrays are written as JSON arrays, without a Python object per
    element (a million-point series page).
    """
    body = orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)
    return web.Response(status=status, body=body, content_type="application/json")
