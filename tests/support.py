"""Test helpers: child processes that keep their logs, waiting on a condition with a deadline, point chunks."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import asyncpg
import yarl

from ingest._partitions import utc_day
from ops.stack import log_tail
from runstream.chunks import CHUNK_COLUMNS, encode_chunk

T = TypeVar("T")


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


class LoggedProcess(subprocess.Popen[bytes]):
    """A child process whose output goes to ``log_path``, so a failure can show how it ended."""

    def __init__(self, argv: Sequence[str], log_path: Path, env: dict[str, str]) -> None:
        self.log_path = log_path
        with log_path.open("ab") as out:
            super().__init__(argv, env=env, stdout=out, stderr=subprocess.STDOUT)


async def wait_http_ok(url: str, proc: subprocess.Popen[bytes] | None = None, timeout_seconds: float = 60.0) -> None:
    """Wait until ``url`` answers 200, failing early (with the end of its log, if known) if ``proc`` exits."""

    async def probe() -> int:
        if proc is not None and proc.poll() is not None:
            tail = log_tail(proc.log_path, 3000) if isinstance(proc, LoggedProcess) else ""
            raise AssertionError(f"process for {url} exited with {proc.returncode}:\n{tail}")
        try:
            async with aiohttp.ClientSession() as session, session.get(url) as resp:
                return resp.status
        except aiohttp.ClientError:
            return 0

    await eventually(probe, lambda status: status == 200, timeout_seconds=timeout_seconds, what=f"200 from {url}")


async def raw_exchange(url: str, request: bytes, *, timeout_seconds: float = 10.0) -> bytes:
    """Send raw bytes to ``url``'s host and port; return what the server answered before closing (or in time)."""
    target = yarl.URL(url)
    reader, writer = await asyncio.open_connection(target.host, target.port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), timeout=timeout_seconds)
    finally:
        writer.close()


def status_line(answer: bytes) -> int:
    """The status code of a raw HTTP answer."""
    return int(answer.split(b" ", 2)[1])


async def copy_chunks(
    conn: asyncpg.Connection,
    series_id: int,
    steps: Sequence[int],
    times: Sequence[float],
    ordinals: Sequence[int],
    values: Sequence[Any],
    *,
    chunk_points: int = 10_000,
) -> int:
    """Points of one series into ``point_chunks`` as ingest writes them: ``chunk_points`` to a row, in this order.

    They are stored today, in today's partition; returns that ``stored_day``.
    The series' summary (``first_day``, ``last_day``...) is the caller's to keep.
    """
    is_text = any(isinstance(v, str) for v in values)
    day = utc_day()
    await conn.fetchval("SELECT runstream_point_partition($1)", day)
    records = [
        (
            *encode_chunk(
                series_id,
                steps[i : i + chunk_points],
                times[i : i + chunk_points],
                ordinals[i : i + chunk_points],
                values[i : i + chunk_points],
                is_text=is_text,
            ),
            day,
        )
        for i in range(0, len(steps), chunk_points)
    ]
    await conn.copy_records_to_table("point_chunks", columns=(*CHUNK_COLUMNS, "stored_day"), records=records)
    return day
