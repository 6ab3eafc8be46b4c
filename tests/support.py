"""Helpers for tests: free ports and waiting on a condition with a deadline."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(
    probe: Callable[[], Awaitable[T]],
    until: Callable[[T], bool],
    *,
    timeout_seconds: float = 60.0,
    interval_seconds: float = 0.1,
    what: str = "condition",
) -> T:
    """Poll ``probe`` until ``until(result)`` holds; fail with the last result at the deadline."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        result = await probe()
        if until(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_seconds}s; last value: {result!r}"[:2000])
        await asyncio.sleep(interval_seconds)


async def wait_http_ok(url: str, proc: subprocess.Popen[bytes] | None = None, timeout_seconds: float = 60.0) -> None:
    """Wait until ``url`` answers 200, failing early if ``proc`` exits."""

    async def probe() -> int:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process for {url} exited with {proc.returncode}")
        try:
            async with aiohttp.ClientSession() as session, session.get(url) as resp:
                return resp.status
        except aiohttp.ClientError:
            return 0

    await eventually(probe, lambda status: status == 200, timeout_seconds=timeout_seconds, what=f"200 from {url}")
