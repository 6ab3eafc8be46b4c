"""Scalar series as columns: one run's (``/api/runs/{run_id}/series``) or several runs' (``/api/series``)."""

from __future__ import annotations

import uuid
from typing import Any, Final

from aiohttp import web

from ._errors import BadRequest, NotFound
from ._json import json_response
from ._series import SeriesRange, SeriesReader, decode_point_cursor
from ._state import DATABASE, SERIES
from ._validate import check_metric_name, parse_float, parse_int, parse_run_id, parse_step

__all__ = ["routes"]

routes = web.RouteTableDef()

DEFAULT_LIMIT: Final = 100_000
MAX_LIMIT: Final = 1_000_000
MAX_POINTS: Final = 100_000
MAX_RUNS: Final = 50


def _single(request: web.Request, name: str) -> str | None:
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise BadRequest(f"{name} is given {len(values)} times", parameter=name)
    return values[0] if values else None


class _Params:
    """The query parameters shared by both endpoints, checked."""

    def __init__(self, request: web.Request) -> None:
        name = _single(request, "name")
        if name is None:
            raise BadRequest("name (the metric) is required", parameter="name")
        self.name = check_metric_name(name)
        self.range = SeriesRange(
            start_step=parse_step(_single(request, "start_step"), "start_step"),
            end_step=parse_step(_single(request, "end_step"), "end_step"),
            start_time=parse_float(_single(request, "start_time"), "start_time"),
            end_time=parse_float(_single(request, "end_time"), "end_time"),
        )
        raw_max = _single(request, "max_points")
        self.max_points = (
            parse_int(raw_max, "max_points", default=0, minimum=2, maximum=MAX_POINTS) if raw_max else None
        )
        self.limit = parse_int(_single(request, "limit"), "limit", default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
        cursor = _single(request, "cursor")
        if cursor is not None and self.max_points is not None:
            raise BadRequest("cursor pages full resolution; it cannot be combined with max_points", parameter="cursor")
        self.after = decode_point_cursor(cursor) if cursor is not None else None


async def _read(reader: SeriesReader, run_id: uuid.UUID, params: _Params) -> dict[str, Any] | None:
    found = await reader.find(run_id, params.name)
    if found is None:
        return None
    if found["kind"] != "scalar":
        raise BadRequest(
            f"metric {params.name!r} is a {found['kind']}, not a scalar series; read it with /metrics?name=",
            code="not_scalar",
            parameter="name",
        )
    if params.max_points is not None:
        if found["value_type"] == "str":
            raise BadRequest(
                f"metric {params.name!r} holds strings, which cannot be downsampled", parameter="max_points"
            )
        return await reader.downsample_cached(
            run_id, found["id"], found["value_type"], params.range, max_points=params.max_points
        )
    return await reader.page(found["id"], found["value_type"], params.range, limit=params.limit, after=params.after)


@routes.get("/api/runs/{run_id}/series")
async def run_series(request: web.Request) -> web.Response:
    """``?name=`` with optional step/time bounds; ``max_points`` downsamples, else ``limit``/``cursor`` pages."""
    run_id = parse_run_id(request.match_info["run_id"])
    params = _Params(request)
    body = await _read(request.app[SERIES], run_id, params)
    if body is None:
        if not await request.app[DATABASE].run_has_data(run_id):
            raise NotFound(f"no run {run_id}", code="run_not_found", parameter="run_id")
        raise NotFound(f"run {run_id} has no metric {params.name!r}", code="metric_not_found", parameter="name")
    return json_response({"run_id": str(run_id), "name": params.name, **body})


@routes.get("/api/series")
async def compare_series(request: web.Request) -> web.Response:
    """The same metric from several runs (``run=`` repeated), for one chart; a run without it has empty columns."""
    raw_runs = request.query.getall("run", [])
    if not raw_runs:
        raise BadRequest("give at least one run=<run id>", parameter="run")
    if len(raw_runs) > MAX_RUNS:
        raise BadRequest(f"at most {MAX_RUNS} runs per request, got {len(raw_runs)}", parameter="run")
    run_ids = list(dict.fromkeys(parse_run_id(r, "run") for r in raw_runs))
    params = _Params(request)
    if params.after is not None:
        raise BadRequest("cursor pages one run's series; use /api/runs/{run_id}/series", parameter="cursor")
    series = []
    for run_id in run_ids:
        body = await _read(request.app[SERIES], run_id, params)
        empty: dict[str, Any] = {
            "value_type": None,
            "steps": [],
            "times": [],
            "values": [],
            "downsampled": False,
            "next_cursor": None,
        }
        series.append({"run_id": str(run_id), **(body or empty)})
    return json_response({"name": params.name, "series": series})
