"""``stream_json`` writes, piece by piece, the same document ``orjson.dumps`` would (query/_json.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import numpy as np
import orjson
import pytest_asyncio
from aiohttp import web

from ops.stack import free_port
from query._json import stream_json

#: What the next request is answered with (the app is frozen once it runs, so a holder it keeps).
CURRENT = web.AppKey("current", dict)


async def _handler(request: web.Request) -> web.StreamResponse:
    return await stream_json(request, request.app[CURRENT]["value"])


@pytest_asyncio.fixture
async def served() -> AsyncIterator[tuple[dict[str, Any], str]]:
    app = web.Application()
    app[CURRENT] = {}
    app.router.add_get("/", _handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield app[CURRENT], f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


def _values(rng: np.random.Generator) -> list[Any]:
    """Documents like the service's answers, and odd ones: long arrays of every kind, nesting, empties."""
    floats = rng.normal(size=200_003)
    tagged = floats.tolist()
    tagged[5] = {"$float": "NaN"}
    tagged[-1] = {"$float": "-Infinity"}
    series = {
        "value_type": "float",
        "steps": np.arange(150_000, dtype=np.int64),
        "times": 1.7e9 + np.arange(150_000) * 0.01,
        "values": floats[:150_000],
        "downsampled": False,
        "next_cursor": None,
    }
    return [
        series,
        {"name": "loss", "series": [{"run_id": "a", **series}, {"run_id": "b", "steps": [], "values": []}]},
        {"x": tagged, "ints": rng.integers(-(2**62), 2**62, size=70_000), "bools": rng.random(66_000) > 0.5},
        {"table": {"a": [1, 2, 3], "b": ["x", None, "z"]}, "nested": [[1, [2, [3]]], {"k": {}}], "empty": {}},
        {"rows": [{"i": i} for i in range(3000)], "text": ["é\u202e\x00"] * 70_000},
        {'key with "quotes" and \\': np.empty(0), "n": None, "t": True, "f": 1.5, "s": "s"},
        [],
        {},
        "bare",
        3,
        [np.arange(5), [np.arange(3)], {"a": np.arange(2)}],
    ]


async def test_streamed_documents_equal_the_whole_ones(served: tuple[dict[str, Any], str]) -> None:
    current, url = served
    async with aiohttp.ClientSession() as session:
        for value in _values(np.random.default_rng(7)):
            current["value"] = value
            async with session.get(url) as resp:
                assert resp.status == 200 and resp.content_type == "application/json"
                assert resp.headers.get("Transfer-Encoding") == "chunked"
                body = await resp.read()
            assert orjson.loads(body) == orjson.loads(orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY))
