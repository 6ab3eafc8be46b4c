"""``GET /api/runs/{run_id}/metrics``: the Azure ML v1 ``get_metrics()`` dict."""

from __future__ import annotations

from aiohttp import web

from ._errors import BadRequest, NotFound
from ._json import json_response
from ._metrics import metrics_dict
from ._state import DATABASE
from ._validate import check_metric_name, parse_bool, parse_run_id

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.get("/api/runs/{run_id}/metrics")
async def get_metrics(request: web.Request) -> web.Response:
    """All metrics of the run, or only ``?name=``; an unknown name gives ``{}`` as Azure does.

    ``?recursive=true`` answers ``{run_id: {...}}`` for the run and its descendants, run first,
    then descendants breadth-first, oldest first within a level.
    """
    run_id = parse_run_id(request.match_info["run_id"])
    names = request.query.getall("name", [])
    if len(names) > 1:
        raise BadRequest("name is given more than once", parameter="name")
    name = check_metric_name(names[0]) if names else None
    recursive = parse_bool(request.query.get("recursive"), "recursive")
    db = request.app[DATABASE]
    series = await db.series(run_id, name)
    if not series and not await db.run_has_data(run_id):
        raise NotFound(f"no run {run_id}", code="run_not_found", parameter="run_id")
    if not recursive:
        return json_response(metrics_dict(series))
    # Azure's recursive=True: {run_id: metrics} for the run and every descendant.
    result = {str(run_id): metrics_dict(series)}
    for descendant in await db.descendants(run_id):
        result[str(descendant)] = metrics_dict(await db.series(descendant, name))
    return json_response(result)
