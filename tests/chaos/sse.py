"""Clients that follow runs over ``GET /api/runs/{id}/stream`` the way a browser's EventSource does:
on a lost connection they wait the server's ``retry`` and connect again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import orjson

#: EventSource's own default, until the server sends ``retry:``.
_RETRY_SECONDS = 3.0
_TERMINAL = frozenset({"Completed", "Failed", "Canceled"})


class StatusWatcher:
    """One live stream per run; records the statuses each stream delivered, in order."""

    def __init__(self, base_url: str, runs: list[str]) -> None:
        self.base_url = base_url
        self.runs = runs
        self.seen: dict[str, list[str]] = {run: [] for run in runs}
        self.reconnects = 0

    async def watch(self, timeout_seconds: float) -> None:
        """Follow every run until its stream has shown a final status."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            await asyncio.wait_for(asyncio.gather(*(self._follow(http, run) for run in self.runs)), timeout_seconds)

    async def _follow(self, http: aiohttp.ClientSession, run: str) -> None:
        retry = _RETRY_SECONDS
        seen = self.seen[run]
        while True:
            try:
                async with http.get(f"{self.base_url}/api/runs/{run}/stream") as resp:
                    # 404: ingest has not stored the run yet; anything else is worth a retry too.
                    if resp.status == 200:
                        async for field, value in _events(resp.content):
                            if field == "retry":
                                retry = int(value) / 1000
                            elif field == "run":
                                status = orjson.loads(value)["status"]
                                if not seen or seen[-1] != status:
                                    seen.append(status)
                                if status in _TERMINAL:
                                    return
                        self.reconnects += 1
            except (aiohttp.ClientError, OSError):
                self.reconnects += 1
            await asyncio.sleep(retry)

    async def history(self, database_url: str) -> dict[str, list[tuple[str, float]]]:
        """Each run's status changes as PostgreSQL recorded them: (status, epoch seconds)."""
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch(
                "SELECT run_id::text, status, extract(epoch FROM time)::float8 AS t FROM status_history"
                " WHERE run_id = ANY($1::uuid[]) ORDER BY time",
                self.runs,
            )
        finally:
            await conn.close()
        history: dict[str, list[tuple[str, float]]] = {run: [] for run in self.runs}
        for row in rows:
            changes = history[row["run_id"]]
            if not changes or changes[-1][0] != row["status"]:
                changes.append((row["status"], row["t"]))
        return history

    def missed(self, history: dict[str, list[tuple[str, float]]]) -> dict[str, tuple[list[str], list[str]]]:
        """Runs whose stream skipped a change after the first status it saw: {run: (history, seen)}."""
        out = {}
        for run, seen in self.seen.items():
            statuses = [status for status, _ in history[run]]
            if not any(statuses[i:] == seen for i in range(len(statuses))):
                out[run] = (statuses, seen)
        return out


async def _events(stream: aiohttp.StreamReader) -> AsyncIterator[tuple[str, str]]:
    """``(event name, data)`` per SSE event, and ``("retry", ms)``; points events can be larger
    than aiohttp's line limit, so frames are split here."""
    buffer = b""
    async for chunk in stream.iter_any():
        buffer += chunk
        *frames, buffer = buffer.split(b"\n\n")
        for frame in frames:
            fields = dict(line.split(b": ", 1) for line in frame.split(b"\n") if b": " in line)
            if b"retry" in fields:
                yield "retry", fields[b"retry"].decode()
            if b"event" in fields:
                yield fields[b"event"].decode(), fields.get(b"data", b"").decode()
