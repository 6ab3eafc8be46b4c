"""``GET /api/runs/{run_id}/metrics``: the Azure ML v1 ``get_metrics()`` dict."""

from __future__ import annotations

from aiohttp import web

from ._errors import BadRequest, NotFound
from ._json import json_response
from ._metrics import metrics_dict
from ._state import DATABASE
from ._validate import check_metric_name, parse_run_id

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.get("/api/runs/{run_id}/metrics")
async def get_metrics(request: web.Request) -> web.Response:
    """All metrics of the run, or only ``?name=``; an unknown name gives ``{}`` as Azure does."""
    run_id = parse_run_id(request.match_info["run_id"])
    names = request.query.getall("name", [])
    if len(names) > 1:
        raise BadRequest("name is given more than once", parameter="name")
    name = check_metric_name(names[0]) if names else None
    db = request.app[DATABASE]
    series = await db.series(run_id, name)
    if not series and not await db.run_has_data(run_id):
        raise NotFound(f"no run {run_id}", code="run_not_found", parameter="run_id")
    return json_response(metrics_dict(series))
