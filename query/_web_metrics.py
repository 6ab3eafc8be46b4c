"""``GET /api/runs/{run_id}/metrics``: the Azure ML v1 ``get_metrics()`` dict.

Every point of every metric asked for, so the answer is bounded like a series
page (:mod:`._heavy`): the points the run (and, with ``recursive``, its
descendants) hold in those metrics, by ingest's counts, must fit the budget;
a bigger run is read a metric at a time, and a scalar series in pages with
``/api/runs/{run_id}/series``.
"""

from __future__ import annotations

from aiohttp import web

from ._errors import BadRequest, NotFound
from ._heavy import check_budget
from ._json import stream_json
from ._metrics import metrics_dict
from ._state import DATABASE, HEAVY_READS
from ._validate import check_metric_name, parse_bool, parse_run_id

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.get("/api/runs/{run_id}/metrics")
async def get_metrics(request: web.Request) -> web.StreamResponse:
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
    runs = [run_id, *(await db.descendants(run_id))] if recursive else [run_id]
    held = await db.point_count(runs, name)
    # Descendants' series say nothing of the run itself.
    if (held is None or len(runs) > 1) and not await db.run_has_data(run_id):
        raise NotFound(f"no run {run_id}", code="run_not_found", parameter="run_id")
    check_budget(
        held or 0,
        f"the metrics asked for ({len(runs)} run{'s' if len(runs) > 1 else ''})",
        parameter="name" if name is None or not recursive else "recursive",
        advice=(
            "ask for one metric with name=, without recursive=true; read a scalar series in pages with"
            f" GET /api/runs/{run_id}/series?name=<metric>&limit=<points>"
        ),
    )
    async with request.app[HEAVY_READS].turn():
        if not recursive:
            return await stream_json(request, metrics_dict(await db.series(run_id, name)))
        # Azure's recursive=True: {run_id: metrics} for the run and every descendant.
        result = {str(r): metrics_dict(await db.series(r, name)) for r in runs}
        return await stream_json(request, result)
