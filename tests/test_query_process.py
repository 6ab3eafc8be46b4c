"""``python -m query`` as a process: serves with settings from the environment, exits cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from collections.abc import Callable
from typing import Any

import aiohttp

from ops.stack import free_port
from runstream.config import Settings
from tests.support import eventually, wait_http_ok


async def test_sigterm_shuts_down_cleanly(settings: Settings, spawn: Callable[..., Any]) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = spawn("query", dataclasses.replace(settings, query_port=port, query_url=url))
    await wait_http_ok(f"{url}/health", proc)
    proc.send_signal(signal.SIGTERM)

    async def exited() -> int | None:
        return proc.poll()

    assert await eventually(exited, lambda code: code is not None, timeout_seconds=20, what="query exit") == 0
    # The port is free again: the listener was closed, not abandoned.
    reader_writer: Any = None
    try:
        reader_writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        pass
    else:
        reader_writer[1].close()
        raise AssertionError("query still accepts connections after SIGTERM")


async def test_sigterm_ends_open_streams(settings: Settings, spawn: Callable[..., Any], db: Any) -> None:
    from tests.test_query_seed import seed_run

    run_id = await seed_run(db)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = spawn("query", dataclasses.replace(settings, query_port=port, query_url=url))
    await wait_http_ok(f"{url}/health", proc)
    async with aiohttp.ClientSession() as client, client.get(f"{url}/api/runs/{run_id}/stream") as resp:
        assert resp.status == 200
        await asyncio.wait_for(resp.content.readline(), 10)
        proc.send_signal(signal.SIGTERM)
        # The server ends the stream itself rather than waiting out its shutdown timeout.
        rest = await asyncio.wait_for(resp.content.read(), 8)
        assert resp.content.at_eof(), rest

    async def exited() -> int | None:
        return proc.poll()

    assert await eventually(exited, lambda code: code is not None, timeout_seconds=20, what="query exit") == 0
