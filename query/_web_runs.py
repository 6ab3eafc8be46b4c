"""Run and experiment endpoints: details, listing with keyset pagination, experiments."""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from ._csv import csv_response, wants_csv
from ._errors import BadRequest, NotFound
from ._json import json_response
from ._limits import DEFAULT_RUNS_LIMIT, MAX_RUNS_LIMIT
from ._run_search import RunSearch, parse_condition, parse_name, parse_sort, parse_status, parse_time
from ._state import DATABASE
from ._validate import parse_bool, parse_int, parse_run_id

__all__ = ["routes"]

routes = web.RouteTableDef()


def _single(request: web.Request, name: str) -> str | None:
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise BadRequest(f"{name} is given {len(values)} times", parameter=name)
    return values[0] if values else None


@routes.get("/api/runs/{run_id}")
async def get_run(request: web.Request) -> web.Response:
    run_id = parse_run_id(request.match_info["run_id"])
    run = await request.app[DATABASE].get_run(run_id)
    if run is None:
        raise NotFound(f"no run {run_id}", code="run_not_found", parameter="run_id")
    return json_response(run)


def _pairs(request: web.Request, parameter: str) -> list[tuple[str, str | None]]:
    """``tag=key:value`` matches a value, ``tag=key`` the key's presence; repeat to combine (``property`` alike)."""
    out: list[tuple[str, str | None]] = []
    for raw in request.query.getall(parameter, []):
        key, sep, value = raw.partition(":")
        if not key:
            raise BadRequest(
                f"{parameter} {raw[:80]!r} has no key; use {parameter}=key or {parameter}=key:value",
                parameter=parameter,
            )
        out.append((key, value if sep else None))
    return out


@routes.get("/api/runs")
async def list_runs(request: web.Request) -> web.Response:
    """Runs matching the filters, in keyset pages; ``next_cursor`` (or null) fetches the next.

    See :mod:`._run_search` for ``where``, ``sort``, ``name`` and the time bounds;
    ``include=metrics`` adds each run's latest value of every scalar metric.
    """
    limit = parse_int(_single(request, "limit"), "limit", default=DEFAULT_RUNS_LIMIT, minimum=1, maximum=MAX_RUNS_LIMIT)
    parent = _single(request, "parent")
    include = _single(request, "include")
    if include not in (None, "metrics"):
        raise BadRequest(f"include must be 'metrics', got {include[:40]!r}", parameter="include")
    experiment = _single(request, "experiment")
    if experiment == "":
        raise BadRequest("experiment is empty; leave it out to list every experiment's runs", parameter="experiment")
    search = RunSearch(
        limit=limit,
        experiment=experiment,
        status=parse_status(_single(request, "status")),
        name=parse_name(_single(request, "name")),
        tags=_pairs(request, "tag"),
        properties=_pairs(request, "property"),
        parent_id=parse_run_id(parent, "parent") if parent is not None else None,
        top_level=parse_bool(_single(request, "top_level"), "top_level"),
        started_after=parse_time(_single(request, "started_after"), "started_after"),
        started_before=parse_time(_single(request, "started_before"), "started_before"),
        conditions=[parse_condition(raw) for raw in request.query.getall("where", [])],
        sort=parse_sort(_single(request, "sort")),
        cursor=_single(request, "cursor"),
    )
    csv = wants_csv(request)
    page = await request.app[DATABASE].list_runs(search, include_metrics=include == "metrics")
    if csv:
        response = csv_response(*runs_table(page.runs), filename="runs.csv")
        if page.next_cursor:
            response.headers["X-Next-Cursor"] = page.next_cursor
        return response
    return json_response({"runs": page.runs, "next_cursor": page.next_cursor})


_RUN_COLUMNS: Final = (
    "id",
    "display_name",
    "experiment",
    "status",
    "parent_id",
    "created_at",
    "started_at",
    "ended_at",
)


def runs_table(runs: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """A header and one row per run: its fields, then ``tag.*``, ``property.*`` and ``metric.*`` columns."""
    groups = [("tag.", "tags"), ("property.", "properties"), ("metric.", "metrics")]
    keys = {field: sorted({k for r in runs for k in (r.get(field) or {})}) for _, field in groups}
    header = [*_RUN_COLUMNS, *(prefix + k for prefix, field in groups for k in keys[field])]
    rows = [
        [r.get(c) for c in _RUN_COLUMNS] + [(r.get(field) or {}).get(k) for _, field in groups for k in keys[field]]
        for r in runs
    ]
    return header, rows


@routes.get("/api/experiments")
async def list_experiments(request: web.Request) -> web.Response:
    return json_response({"experiments": await request.app[DATABASE].list_experiments()})
