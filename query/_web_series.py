"""Scalar series as columns: one run's (``/api/runs/{run_id}/series``) or several runs' (``/api/series``).

Before a point is read, the series are looked up with the counts ingest keeps
(``point_count``), and the answer's size is bounded: up to ``limit`` (or
``max_points``) points from each run, summed over the runs, within the points
budget (:mod:`._heavy`); then the answer is built in its turn.

``x_axis`` picks the axis a downsampled answer's buckets span (steps or
times); ``format=csv`` (or ``Accept: text/csv``) answers one row per point.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Final

import asyncpg
from aiohttp import web

from ._csv import csv_response, wants_csv
from ._errors import BadRequest, NotFound
from ._heavy import check_budget
from ._json import stream_json
from ._limits import DEFAULT_SERIES_LIMIT, MAX_MAX_POINTS, MAX_SERIES_LIMIT, MIN_MAX_POINTS
from ._series import X_AXES, SeriesRange, SeriesReader, decode_point_cursor
from ._state import DATABASE, HEAVY_READS, SERIES
from ._validate import check_metric_name, parse_compared_runs, parse_float, parse_int, parse_run_id, parse_step

__all__ = ["routes"]

routes = web.RouteTableDef()

#: Runs of one comparison read at once: enough to keep PostgreSQL and the decoding both busy,
#: few enough to leave the pool's other connections to other requests.
_OVERLAPPED_READS: Final = 3

_EMPTY: Final[dict[str, Any]] = {
    "value_type": None,
    "steps": [],
    "times": [],
    "values": [],
    "downsampled": False,
    "buckets": None,
    "next_cursor": None,
}


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
            parse_int(raw_max, "max_points", default=0, minimum=MIN_MAX_POINTS, maximum=MAX_MAX_POINTS)
            if raw_max is not None
            else None
        )
        self.limit = parse_int(
            _single(request, "limit"), "limit", default=DEFAULT_SERIES_LIMIT, minimum=1, maximum=MAX_SERIES_LIMIT
        )
        self.x_axis = _single(request, "x_axis") or "step"
        if self.x_axis not in X_AXES:
            raise BadRequest(f"x_axis must be one of {', '.join(X_AXES)}, got {self.x_axis[:20]!r}", parameter="x_axis")
        self.csv = wants_csv(request)
        cursor = _single(request, "cursor")
        if cursor is not None and self.max_points is not None:
            raise BadRequest("cursor pages full resolution; it cannot be combined with max_points", parameter="cursor")
        self.after = decode_point_cursor(cursor) if cursor is not None else None

    def check_budget(self, found: list[asyncpg.Record]) -> None:
        """At most ``limit`` (or ``max_points``) points from each series, summed: within the budget."""
        cap, parameter = (self.max_points, "max_points") if self.max_points is not None else (self.limit, "limit")
        points = sum(min(cap, r["point_count"]) for r in found)
        check_budget(
            points,
            f"{len(found)} series of up to {cap:,} points each",
            parameter=parameter,
            advice=f"lower {parameter}, ask for fewer runs or a narrower range",
        )


def _scalar(found: asyncpg.Record | None, name: str) -> asyncpg.Record | None:
    if found is not None and found["kind"] != "scalar":
        raise BadRequest(
            f"metric {name!r} is a {found['kind']}, not a scalar series; read it with /metrics?name=",
            code="not_scalar",
            parameter="name",
        )
    return found


async def _read(
    reader: SeriesReader,
    run_id: uuid.UUID,
    found: asyncpg.Record,
    params: _Params,
    version: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """One run's answer; ``version``, its data version when the caller read it (else read here)."""
    series = (run_id, found["id"], found["value_type"], params.range)
    if params.max_points is None:
        return await reader.page(
            *series, limit=params.limit, after=params.after, point_count=found["point_count"], version=version
        )
    if found["value_type"] == "str":
        raise BadRequest(f"metric {params.name!r} holds strings, which cannot be downsampled", parameter="max_points")
    return await reader.downsample_cached(*series, max_points=params.max_points, x_axis=params.x_axis, version=version)


@routes.get("/api/runs/{run_id}/series")
async def run_series(request: web.Request) -> web.StreamResponse:
    """``?name=`` with optional step/time bounds; ``max_points`` downsamples, else ``limit``/``cursor`` pages."""
    run_id = parse_run_id(request.match_info["run_id"])
    params = _Params(request)
    reader = request.app[SERIES]
    found = _scalar((await reader.find([run_id], params.name)).get(run_id), params.name)
    if found is None:
        if not await request.app[DATABASE].run_has_data(run_id):
            raise NotFound(f"no run {run_id}", code="run_not_found", parameter="run_id")
        raise NotFound(f"run {run_id} has no metric {params.name!r}", code="metric_not_found", parameter="name")
    params.check_budget([found])
    async with request.app[HEAVY_READS].turn():
        body = await _read(reader, run_id, found, params)
        if params.csv:
            return csv_response(["step", "time", "value"], _rows(body), filename="series.csv")
        return await stream_json(request, {"run_id": str(run_id), "name": params.name, **body})


@routes.get("/api/series")
async def compare_series(request: web.Request) -> web.StreamResponse:
    """The same metric from several runs (``run=`` repeated), for one chart; a run without it has empty columns."""
    run_ids = parse_compared_runs(request.query.getall("run", []))
    params = _Params(request)
    if params.after is not None:
        raise BadRequest("cursor pages one run's series; use /api/runs/{run_id}/series", parameter="cursor")
    reader = request.app[SERIES]
    found = await reader.find(run_ids, params.name)
    for each in found.values():
        _scalar(each, params.name)
    params.check_budget(list(found.values()))

    overlap = asyncio.Semaphore(_OVERLAPPED_READS)

    async def one(run_id: uuid.UUID) -> dict[str, Any]:
        record = found.get(run_id)
        async with overlap:
            body = await _read(reader, run_id, record, params, versions[run_id]) if record is not None else _EMPTY
        return {"run_id": str(run_id), **body}

    async with request.app[HEAVY_READS].turn():
        # Every run's data version in one query, read before any of their points (see _decoded).
        versions = await reader.data_versions(list(found))
        # The runs' reads overlap: PostgreSQL reads one run's chunks while this process decodes another's.
        series = await asyncio.gather(*(one(run_id) for run_id in run_ids))
        if params.csv:
            rows = ([s["run_id"], *row] for s in series for row in _rows(s))
            return csv_response(["run_id", "step", "time", "value"], rows, filename="series.csv")
        return await stream_json(request, {"name": params.name, "series": series})


def _column(values: Any) -> list[Any]:
    return values.tolist() if hasattr(values, "tolist") else list(values)


def _rows(body: dict[str, Any]) -> Any:
    """(step, time, value) per point of a series answer."""
    return zip(_column(body["steps"]), _column(body["times"]), _column(body["values"]), strict=True)
