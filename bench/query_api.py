"""The query service's HTTP API as the benchmarks use it (one place to follow if it changes)."""

from __future__ import annotations

from typing import Any

import aiohttp

__all__ = ["QueryError", "get_run", "list_runs", "read_series"]


class QueryError(RuntimeError):
    """The query service answered with an unexpected status."""


async def _get(session: aiohttp.ClientSession, url: str, params: dict[str, Any]) -> tuple[int, Any]:
    async with session.get(url, params={k: str(v) for k, v in params.items() if v is not None}) as resp:
        if resp.status == 404:
            return 404, None
        if resp.status != 200:
            raise QueryError(f"GET {url} {params} -> {resp.status}: {(await resp.text())[:300]}")
        return 200, await resp.json(content_type=None)


async def read_series(
    session: aiohttp.ClientSession,
    base: str,
    run_id: str,
    name: str,
    *,
    max_points: int | None = None,
    start_step: int | None = None,
    limit: int | None = None,
) -> tuple[list[int], list[Any], int]:
    """(steps, values, pages) of one scalar series, following keyset pages; empty if it does not exist yet."""
    url = f"{base}/api/runs/{run_id}/series"
    params: dict[str, Any] = {"name": name, "max_points": max_points, "start_step": start_step, "limit": limit}
    steps: list[int] = []
    values: list[Any] = []
    pages = 0
    while True:
        status, body = await _get(session, url, params)
        if status == 404:
            return steps, values, pages
        pages += 1
        steps += body["steps"]
        values += body["values"]
        cursor = body.get("next_cursor")
        if not cursor or max_points is not None:
            return steps, values, pages
        params["cursor"] = cursor


async def get_run(session: aiohttp.ClientSession, base: str, run_id: str) -> Any:
    status, body = await _get(session, f"{base}/api/runs/{run_id}", {})
    if status == 404:
        raise QueryError(f"run {run_id} not found")
    return body


async def list_runs(session: aiohttp.ClientSession, base: str, *, limit: int, experiment: str | None = None) -> Any:
    _, body = await _get(session, f"{base}/api/runs", {"limit": limit, "experiment": experiment})
    return body
