"""The HTML pages: experiments, one experiment's runs, and a run (the SDK's portal URL)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlencode

import numpy as np
import orjson
from aiohttp import web

from runstream.events import DESCRIPTION_PREFIX, STATUSES, TERMINAL_STATUSES, metric_descriptions

from . import _html as h
from ._db import Database, FileRecord
from ._driver_log import LogText, read_tail
from ._errors import NotFound
from ._html_response import html_response
from ._limits import MAX_SERIES_RUNS
from ._metrics import EMPTY, SeriesData, metric_value, scalar_value
from ._run_files import run_files
from ._run_search import RunSearch, parse_condition, parse_name, parse_sort, parse_status
from ._series import SeriesRange, SeriesReader
from ._state import DATABASE, HEAVY_READS, LIVE, SERIES, SETTINGS
from ._validate import check_metric_name, parse_compared_runs, parse_run_id

__all__ = ["routes"]

routes = web.RouteTableDef()

_RUNS_PER_PAGE: Final = 100
_TABLE_ROWS: Final = 200
_METRIC_COLUMNS: Final = 60
_XY_ROWS: Final = 10_000
_SVG_POINTS: Final = 600
_STR_TAIL: Final = 20
#: Metrics whose last values the run page's summary line shows.
_SUMMARY_METRICS: Final = 6
_LOG_TAIL_BYTES: Final = 64 * 1024


_RUN_SCRIPTS: Final = ("/static/vendor/uplot/uPlot.iife.min.js", "/static/chart.js", "/static/run.js")
_RUN_STYLES: Final = ("/static/vendor/uplot/uPlot.min.css",)
_STARTING_SCRIPTS: Final = ("/static/run.js",)
_COMPARE_SCRIPTS: Final = ("/static/chart.js", "/static/compare.js")
_EXPERIMENT_SCRIPTS: Final = ("/static/experiment.js",)


@routes.get("/")
async def experiments_page(request: web.Request) -> web.Response:
    experiments = await request.app[DATABASE].list_experiments()
    rows = [
        (
            f'<a href="{h.esc(h.url("experiments", e["name"]))}">{h.esc(e["name"])}</a>',
            h.esc(e["run_count"]),
            h.esc(e["last_activity"] or ""),
        )
        for e in experiments
    ]
    body = "<h1>Experiments</h1>" + (
        h.table(["experiment", "runs", "last activity"], rows, raw=True) if rows else "<p>No experiments yet.</p>"
    )
    return html_response(h.page("Experiments", body))


@routes.get("/experiments/{name:.+}")
async def experiment_page(request: web.Request) -> web.Response:
    """The experiment's runs, newest first: status, times, tags and each metric's latest value."""
    name = request.match_info["name"]
    db = request.app[DATABASE]
    if not await db.experiment_exists(name):
        raise NotFound(f"no experiment {name!r}", code="experiment_not_found", parameter="name")
    status = parse_status(request.query.get("status") or None)
    run_name = parse_name(request.query.get("name") or None)
    tag = request.query.get("tag") or None
    where = request.query.get("where") or None
    sort = request.query.get("sort") or None
    key, sep, value = (tag or "").partition(":")
    search = RunSearch(
        limit=_RUNS_PER_PAGE,
        experiment=name,
        status=status,
        name=run_name,
        tags=[(key, value if sep else None)] if key else [],
        conditions=[parse_condition(where)] if where else [],
        sort=parse_sort(sort),
        cursor=request.query.get("cursor"),
    )
    page = await db.list_runs(search, include_metrics=True)
    columns = _RunColumns(page.runs)
    rows = [
        [
            f'<input type="checkbox" name="run" value="{h.esc(r["id"])}" aria-label="compare">',
            f'<a href="{h.esc(h.url("runs", r["id"]))}">{h.esc(r["display_name"] or r["id"])}</a>',
            f'<span class="status {h.esc(r["status"])}">{h.esc(r["status"])}</span>',
            _time(r["started_at"] or r["created_at"]),
            _duration_cell(r),
            *(h.esc(_show(v)) if v is not None else "" for v in columns.values(r)),
        ]
        for r in page.runs
    ]
    state = {"status": status, "name": run_name, "tag": tag, "where": where, "sort": sort}
    here = h.url("experiments", name)

    def link(**changes: str | None) -> str:
        params = {k: v for k, v in {**state, **changes}.items() if v}
        return here + ("?" + urlencode(params) if params else "")

    more = f'<p><a href="{h.esc(link(cursor=page.next_cursor))}">older runs</a></p>' if page.next_cursor else ""
    options = "".join(
        f'<option value="{h.esc(s)}"{" selected" if s == status else ""}>{h.esc(s or "any status")}</option>'
        for s in ("", *STATUSES)
    )
    filters = (
        f'<form method="get" class="filters"><input name="name" type="search" placeholder="run name" '
        f'value="{h.esc(run_name or "")}"> <select name="status">{options}</select> '
        f'<input name="tag" placeholder="tag or tag:value" value="{h.esc(tag or "")}"> '
        f'<input name="where" placeholder="accuracy&gt;0.9" value="{h.esc(where or "")}"> '
        f'<input type="hidden" name="sort" value="{h.esc(sort or "")}"> <button>Filter</button></form>'
    )

    def sort_header(label: str, ascending: str) -> str:
        # Click once for descending (best or newest first), again to flip.
        target = "-" + ascending if sort != "-" + ascending else ascending
        return f'<a href="{h.esc(link(sort=target))}">{h.esc(label)}</a>'

    headers = [
        "",
        "run",
        "status",
        sort_header("started", "created_at"),
        "duration",
        *columns.labels(metric_header=lambda m: sort_header(m, f"last({m})")),
    ]
    attrs = [f'data-run="{h.esc(r["id"])}"' for r in page.runs]
    table = (
        f'<div class="table-wrap">{h.table(headers, rows, raw=True, raw_headers=True, row_attrs=attrs)}</div>'
        if rows
        else "<p class=muted>No runs.</p>"
    )
    if rows and columns.metrics:
        # Left empty, the compare page draws the metric logged most.
        choices = '<option value="">the most logged metric</option>' + "".join(
            f'<option value="{h.esc(m)}">{h.esc(m)}</option>' for m in columns.metrics
        )
        table = (
            f'<form method="get" action="/compare" id="compare-form">{table}'
            f'<p>Compare the checked runs on <select name="name">{choices}</select> <button>Compare</button></p></form>'
        )
    csv_params = {"experiment": name, "include": "metrics", "format": "csv", "status": status, "name": run_name}
    csv_link = "/api/runs?" + urlencode({k: v for k, v in csv_params.items() if v} | {"limit": _RUNS_PER_PAGE})
    tools = (
        f'<p class="rs-picker"><a id="runs-csv" href="{h.esc(csv_link)}">runs as CSV</a></p>'
        '<div id="columns" class="rs-picker"></div><div id="group" class="rs-picker"></div><div id="scatter"></div>'
    )
    notice = '<p id="new-runs" hidden><span>0</span> new runs: <a href="">reload</a></p>'
    data = h.esc(orjson.dumps(columns.table(page.runs)).decode())
    live_runs = request.app[LIVE].experiment_runs  # the newest runs the experiment's stream watches
    body = (
        f'<div id="experiment" data-experiment="{h.esc(name)}" data-live-runs="{live_runs}" data-table="{data}">'
        f"<h1>Experiment {h.esc(name)}</h1>"
    )
    body += f"{filters}{notice}{tools}{table}{more}</div>"
    return html_response(h.page(name, body, scripts=_EXPERIMENT_SCRIPTS))


class _RunColumns:
    """The runs table's own columns after the fixed ones: each tag, each property, each metric's last value."""

    def __init__(self, runs: list[dict[str, Any]]) -> None:
        def keys(field: str) -> list[str]:
            found = {k for r in runs for k in (r.get(field) or {})}
            return sorted(k for k in found if not k.startswith(DESCRIPTION_PREFIX))

        self.tags, self.properties = keys("tags"), keys("properties")
        self.metrics = sorted({m for r in runs for m in r.get("metrics", {})})[:_METRIC_COLUMNS]

    def _fields(self) -> list[tuple[str, str, str]]:
        return [
            *(("tags", k, f"tag {k}") for k in self.tags),
            *(("properties", k, f"property {k}") for k in self.properties),
            *(("metrics", k, k) for k in self.metrics),
        ]

    def labels(self, *, metric_header: Any) -> list[str]:
        """Header cells (escaped): metrics' as ``metric_header`` makes them, the others' as text."""
        return [metric_header(k) if field == "metrics" else h.esc(label) for field, k, label in self._fields()]

    def values(self, run: dict[str, Any]) -> list[Any]:
        return [(run.get(field) or {}).get(k) for field, k, _ in self._fields()]

    def table(self, runs: list[dict[str, Any]]) -> dict[str, Any]:
        """For experiment.js: the columns (kind, key, label) and each run's values, for grouping and the scatter."""
        fields = self._fields()
        return {
            "columns": [{"kind": field, "key": k, "label": label} for field, k, label in fields],
            "runs": [
                {"id": r["id"], "label": r["display_name"] or r["id"][:8], "values": self.values(r)} for r in runs
            ],
        }


def _duration_cell(run: dict[str, Any]) -> str:
    """The run's duration; experiment.js ticks it while the run has no end."""
    start = run.get("started_at") or run.get("created_at") or ""
    ended = run.get("ended_at") or ""
    return f'<span data-duration data-start="{h.esc(start)}" data-ended="{h.esc(ended)}">{h.esc(_duration(run))}</span>'


def _duration(run: dict[str, Any]) -> str:
    start, end = run.get("started_at") or run.get("created_at"), run.get("ended_at")
    if not start or not end:
        return ""
    seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


@routes.get("/compare")
async def compare_page(request: web.Request) -> web.Response:
    """Metrics (``name`` repeated; by default the most logged) of several runs (``run`` repeated), a chart each.

    compare.js adds and removes runs and metrics on the page and keeps them in the URL.
    """
    raw_runs = request.query.getall("run", [])
    if not raw_runs:
        return await _pick_runs_page(request.app[DATABASE])
    run_ids = parse_compared_runs(raw_runs)
    chosen = [check_metric_name(n) for n in request.query.getall("name", []) if n]
    db: Database = request.app[DATABASE]
    metrics = await request.app[SERIES].scalar_metrics(run_ids)
    if not chosen and metrics:
        chosen = [metrics[0][0]]
    runs = []
    for run_id in run_ids:
        run = await db.get_run(run_id) or {}
        start = run.get("started_at") or run.get("created_at")
        runs.append(
            {
                "id": str(run_id),
                "label": run.get("display_name") or str(run_id)[:8],
                "experiment": run.get("experiment"),
                "status": run.get("status"),
                "t0": datetime.fromisoformat(start).timestamp() if start else None,
            }
        )
    data = {"runs": runs, "metrics": metrics, "chosen": chosen}
    title = ", ".join(chosen) or "no metrics"
    body = (
        f"<h1>Compare {len(runs)} run{'s' if len(runs) != 1 else ''}</h1>"
        f'<div id="compare" data-compare="{h.esc(orjson.dumps(data).decode())}">'
        '<div class="toolbar"><div id="chart-controls"></div></div>'
        '<div id="compare-runs" class="rs-picker"></div><div id="compare-metrics" class="rs-picker"></div>'
        '<div id="compare-charts"></div>'
        "<noscript>The comparison charts need JavaScript.</noscript></div>"
    )
    if not metrics:
        body += "<p class=muted>None of these runs has logged a numeric metric yet.</p>"
    return html_response(h.page(f"Compare {title}", body, scripts=_COMPARE_SCRIPTS))


async def _pick_runs_page(db: Database) -> web.Response:
    """Compare with no run chosen: how to choose some, and where."""
    experiments = await db.list_experiments()
    links = "".join(
        f'<li><a href="{h.esc(h.url("experiments", e["name"]))}">{h.esc(e["name"])}</a>'
        f" <span class=muted>{h.esc(e['run_count'])} runs</span></li>"
        for e in experiments[:50]
    )
    body = (
        "<h1>Compare runs</h1><p>No runs are chosen yet. Open an experiment, check the runs to compare "
        f"(up to {MAX_SERIES_RUNS}), and press <b>Compare</b>.</p>"
        + (f"<ul>{links}</ul>" if links else "<p class=muted>No experiments yet.</p>")
    )
    return html_response(h.page("Compare runs", body))


@routes.get("/runs/{run_id}")
async def run_page(request: web.Request) -> web.Response:
    """Status, times, tags, properties, files, the driver log and every metric of one run."""
    run_id = parse_run_id(request.match_info["run_id"])
    db: Database = request.app[DATABASE]
    run = await db.get_run(run_id)
    if run is None and not await db.run_has_data(run_id):
        return _starting_page(run_id)
    # Scalars from ingest's summary and a cached downsample, never every point:
    # the page of a run with a million points costs what a small one does.
    overview = await db.series_overview(run_id)
    entries = {s.name: s for s in await db.series(run_id, with_scalars=False)}
    files = await run_files(db, run_id)
    live = run is None or run["status"] not in TERMINAL_STATUSES
    title = (run or {}).get("display_name") or str(run_id)
    stored = {f.name for f in files}
    descriptions = metric_descriptions((run or {}).get("properties"))
    sections: dict[str, list[str]] = {}
    # Downsampling reads every point of each series (once; then it is cached): a heavy read.
    async with request.app[HEAVY_READS].turn():
        for item in overview:
            name = item["name"]
            if item["kind"] == "scalar":
                content = await _scalar_body(request.app[SERIES], run_id, item)
            else:
                content = _entries_body(entries[name], str(run_id), stored) if name in entries else ""
            if content:
                sections.setdefault(_group(name), []).append(_metric_section(name, descriptions.get(name), content))
    body = f"<h1>Run {h.esc(title)}</h1>"
    description = (run or {}).get("description")
    if description:
        body += f'<p class="run-description">{h.esc(description)}</p>'
    body += _summary(run, overview)
    search = '<input id="metric-search" type="search" placeholder="search metrics" aria-label="search metrics">'
    metrics = "".join(_metric_group(g, items) for g, items in sorted(sections.items())) or (
        '<p id="no-metrics">No metrics yet.</p>'
    )
    body += f'<h2>Metrics</h2><div class="toolbar">{search}<div id="chart-controls"></div></div>'
    body += f'<div id="metrics">{metrics}</div>'
    # After the run was read: a terminal status read first means the log read next is whole.
    body += _driver_log(await read_tail(request.app, run_id, _LOG_TAIL_BYTES, terminal=not live), live=live)
    body += _details(run, str(run_id)) + _files(str(run_id), files)
    start = (run or {}).get("started_at") or (run or {}).get("created_at")
    t0 = f' data-t0="{datetime.fromisoformat(start).timestamp()!r}"' if start else ""
    document = h.page(
        title,
        f'<div id="run" data-run-id="{h.esc(run_id)}"{t0}>{body}</div>',
        scripts=_RUN_SCRIPTS,
        styles=_RUN_STYLES,
        live=live,
    )
    return html_response(document, frame_ancestors=request.app[SETTINGS].embed_origins)


def _group(name: str) -> str:
    """A metric's section: the part of its name before the first '/' (train/, val/), or '' for none."""
    prefix, slash, _ = name.partition("/")
    return prefix if slash and prefix else ""


def _metric_group(group: str, sections: list[str]) -> str:
    label = f"{group}/" if group else "metrics"
    return (
        f'<details class="metric-group" data-group="{h.esc(group)}" open>'
        f"<summary>{h.esc(label)} <span class=muted>({len(sections)})</span></summary><div>{''.join(sections)}</div>"
        "</details>"
    )


def _summary(run: dict[str, Any] | None, overview: list[dict[str, Any]]) -> str:
    """One line: status, duration (run.js ticks it while the run is live) and the last values of key metrics."""
    if run is None:
        return ""
    start = run.get("started_at") or run.get("created_at") or ""
    parts = [
        f'<span id="run-status" class="status {h.esc(run["status"])}">{h.esc(run["status"])}</span>',
        f'<span id="run-duration" data-start="{h.esc(start)}" data-end="{h.esc(run["ended_at"] or "")}">'
        f"{h.esc(_duration(run))}</span>",
    ]
    scalars = [i for i in overview if i["kind"] == "scalar" and i["point_count"] and i["value_type"] != "str"]
    # Losses and accuracies first, then the most logged.
    scalars.sort(key=lambda i: (not any(k in i["name"].lower() for k in ("loss", "acc")), -i["point_count"]))
    for item in scalars[:_SUMMARY_METRICS]:
        value = scalar_value(item["value_type"], item["last_value"], item["last_text"])
        parts.append(
            f'<span class="last" data-last="{h.esc(item["name"])}">{h.esc(item["name"])} '
            f"<b>{h.esc(_show(value))}</b></span>"
        )
    return f'<p id="run-summary">{" · ".join(parts)}</p>'


def _starting_page(run_id: uuid.UUID) -> web.Response:
    """A run ingest has stored nothing of yet: "starting", then the whole page once its first data is stored.

    The SDK prints a run's portal URL as soon as ``start_logging()`` returns,
    which is before ingest has stored the run's start: a browser opening it
    must not get a 404 for a run that exists. run.js follows the run's live
    stream and reloads the page at its first event; without JavaScript the
    page reloads itself every few seconds.
    """
    body = (
        f"<h1>Run {h.esc(run_id)}</h1>"
        '<p id="run-starting"><span class="status Starting">Starting</span> waiting for the first data: this page '
        "fills in as soon as ingest has stored the run's start, usually within a second of it.</p>"
        "<p class=muted>Nothing has been stored for this run id yet. If the page stays like this, check the "
        "address and that ingest is running.</p>"
    )
    document = h.page(
        f"Run {run_id}",
        f'<div id="run" data-run-id="{h.esc(run_id)}" data-starting>{body}</div>',
        scripts=_STARTING_SCRIPTS,
        live=True,
    )
    return html_response(document)


def _details(run: dict[str, Any] | None, run_id: str) -> str:
    if run is None:
        return f"<p class=muted>Run {h.esc(run_id)}: metrics are stored but its start is not ingested yet.</p>"
    experiment = f'<a href="{h.esc(h.url("experiments", run["experiment"]))}">{h.esc(run["experiment"])}</a>'
    parent = (
        f'<a href="{h.esc(h.url("runs", run["parent_id"]))}">{h.esc(run["parent_id"])}</a>' if run["parent_id"] else ""
    )
    fields = [
        ("id", h.esc(run["id"])),
        ("experiment", experiment),
        ("parent", parent),
        ("created", _time(run["created_at"])),
        ("started", _time(run["started_at"])),
        ("ended", f'<span id="run-ended">{_time(run["ended_at"])}</span>'),
        ("last heartbeat", _time(run["heartbeat_at"])),
    ]
    out = "<h2>Details</h2>" + h.table(["field", "value"], fields, raw=True)
    if run["error"]:
        out += f"<h2>Error</h2><pre>{h.esc(h.json_text(run['error']))}</pre>"
    out += "<h2>Tags</h2>" + _mapping(run["tags"])
    # Descriptions are shown with their metrics; as properties they are the SDK's plumbing.
    properties = {k: v for k, v in (run["properties"] or {}).items() if not k.startswith(DESCRIPTION_PREFIX)}
    out += "<h2>Properties</h2>" + _mapping(properties)
    return out


def _time(iso: str | None) -> str:
    """A time the page's script shows in the reader's local time; the ISO text without it."""
    return f'<time datetime="{h.esc(iso)}">{h.esc(iso)}</time>' if iso else ""


def _mapping(values: dict[str, Any] | None) -> str:
    if not values:
        return "<p class=muted>none</p>"
    return h.table(["key", "value"], [(k, "" if v is None else v) for k, v in values.items()])


def _file_url(run_id: str, name: str) -> str:
    return h.url("api", "runs", run_id, "files", name)


def _files(run_id: str, files: list[FileRecord]) -> str:
    if not files:
        return "<h2>Files</h2><p class=muted>none</p>"
    rows = [
        (
            f'<a href="{h.esc(_file_url(run_id, f.name))}">{h.esc(f.name)}</a>',
            h.esc(f.size),
            h.esc(f.content_type),
        )
        for f in files
    ]
    return "<h2>Files</h2>" + h.table(["name", "bytes", "type"], rows, raw=True)


def _driver_log(log: LogText, *, live: bool) -> str:
    """The log's tail; on a live run run.js appends what follows ``data-next-offset``.

    A live run without a log yet gets the section hidden and empty: run.js shows it when text arrives.
    """
    if not log.size and not live:
        return ""
    clipped = (
        f'<p id="driver-log-clipped" class=muted>last {log.size - log.offset} of {log.size} bytes</p>'
        if log.offset
        else ""
    )
    follow = " data-follow" if live else ""
    return (
        f'<section id="driver-log-section"{"" if log.size else " hidden"}><h2>Driver log</h2>{clipped}'
        f'<pre id="driver-log" data-next-offset="{log.next_offset}"{follow}>{h.esc(log.text)}</pre></section>'
    )


def _metric_section(name: str, description: str | None, body: str) -> str:
    note = f'<p class="description">{h.esc(description)}</p>' if description else ""
    return f'<section class="metric" data-metric="{h.esc(name)}"><h3>{h.esc(name)}</h3>{note}{body}</section>'


def _entries_body(s: SeriesData, run_id: str, files: set[str]) -> str:
    value = metric_value(s)
    return "" if value is EMPTY else _metric_body(s, value, run_id, files)


def _image(run_id: str, name: str, stored: bool) -> str:
    url = h.esc(_file_url(run_id, name))
    if not stored:  # logged, but the file is not uploaded (yet)
        return f'<p class="muted">image {h.esc(name)} (file not uploaded)</p>'
    return (
        f'<figure><a href="{url}"><img src="{url}" alt="{h.esc(name)}" loading="lazy" style="max-width:100%"></a>'
        f"<figcaption>{h.esc(name)}</figcaption></figure>"
    )


def _metric_body(s: SeriesData, value: Any, run_id: str, files: set[str]) -> str:
    if s.kind == "image":
        names = [str(n) for n in (value if isinstance(value, list) else [value])]
        images = "".join(_image(run_id, n, n in files) for n in names)
        # run.js shows one at a time with a slider over the logging order; without it, all are listed.
        return f'<div class="image-steps">{images}</div>' if len(names) > 1 else images
    if s.kind == "list":
        lists = value if len(s.entries) > 1 else [value]
        charts = "".join(h.chart_svg(v, label=s.name) for v in lists if isinstance(v, list))
        return charts + f"<pre>{h.esc(_clip(h.json_text(value)))}</pre>"
    if s.kind in ("row", "table") and isinstance(value, dict):
        return _columns(s.name, value)
    return f"<pre>{h.esc(_clip(h.json_text(value)))}</pre>"


async def _scalar_body(reader: SeriesReader, run_id: uuid.UUID, item: dict[str, Any]) -> str:
    if not item["point_count"]:
        return ""
    name, value_type = item["name"], item["value_type"]
    last = scalar_value(value_type, item["last_value"], item["last_text"])
    body = h.table(["points", "last"], [(str(item["point_count"]), _show(last))])
    if value_type == "str":
        recent = await reader.tail(item["id"], value_type, _STR_TAIL)
        first = item["point_count"] - len(recent)
        body += h.table(["#", "value"], [(str(first + i), _show(v)) for i, v in enumerate(recent)])
    else:
        points = await reader.downsample_cached(run_id, item["id"], value_type, SeriesRange(), max_points=_SVG_POINTS)
        ys = [v if isinstance(v, int | float) else None for v in _as_list(points["values"])]
        # The SVG is the no-JavaScript view; run.js replaces it with a live chart.
        svg = h.chart_svg(ys, _as_list(points["steps"]), label=name)
        body += f'<div class="chart" data-chart="{h.esc(name)}">{svg}</div>'
    return body


def _as_list(column: Any) -> list[Any]:
    """A column of a series answer (a numpy array, or a list when it holds tagged values) as Python values."""
    return column.tolist() if isinstance(column, np.ndarray) else list(column)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) or _is_nonfinite(value)


def _is_nonfinite(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"$float"}


def _columns(name: str, columns: dict[str, Any]) -> str:
    """Rows and tables: a table of the first rows and, with two numeric columns, a y-over-x chart."""
    lists = {k: (v if isinstance(v, list) else [v]) for k, v in columns.items()}
    count = max((len(v) for v in lists.values()), default=0)
    numeric = [
        k
        for k, v in lists.items()
        if any(isinstance(x, int | float) for x in v) and all(x is None or _is_number(x) for x in v)
    ]
    chart = ""
    if len(numeric) >= 2:
        svg = h.chart_svg(lists[numeric[1]], lists[numeric[0]], label=f"{name}: {numeric[1]} over {numeric[0]}")
        # run.js draws it with uPlot and lets the reader pick the x and y columns.
        data = orjson.dumps({k: lists[k][:_XY_ROWS] for k in numeric}).decode()
        chart = f'<div class="xy-chart" data-xy="{h.esc(name)}" data-columns="{h.esc(data)}">{svg}</div>'
    rows = [[_show(v[i]) if i < len(v) else "" for v in lists.values()] for i in range(min(count, _TABLE_ROWS))]
    more = f"<p class=muted>first {_TABLE_ROWS} of {count} rows</p>" if count > _TABLE_ROWS else ""
    return chart + h.table(list(lists), rows) + more


def _show(value: Any) -> str:
    if isinstance(value, dict) and "$float" in value:
        return str(value["$float"])
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:.6g}"  # six significant digits: the page is for reading; the API has every digit
    return h.json_text(value) if isinstance(value, list | dict) else str(value)


def _clip(text: str, limit: int = 4000) -> str:
    return text if len(text) <= limit else text[:limit] + "\n…"
