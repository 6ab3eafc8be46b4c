"""Server-rendered HTML: the page frame, tables, and inline SVG line charts (no scripts, no CDN).

Every value that reaches the markup goes through :func:`esc` (or ``quote`` for
URLs): names, tags and properties are user input.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any, Final
from urllib.parse import quote

import orjson

__all__ = ["chart_svg", "esc", "json_text", "page", "table", "url"]

_CHART_POINTS: Final = 600
_WIDTH: Final = 640
_HEIGHT: Final = 160
_PAD: Final = 6

_STYLE: Final = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:1em 1.5em;color:#1d2330}
h1{font-size:1.4em;margin:.2em 0 .6em}h2{font-size:1.15em;margin:1.4em 0 .4em;border-bottom:1px solid #dde}
h3{font-size:1em;margin:1em 0 .3em;font-family:ui-monospace,monospace}
table{border-collapse:collapse;margin:.3em 0;display:block;overflow-x:auto;max-width:100%}
td,th{border:1px solid #dde;padding:.2em .6em;text-align:left;
vertical-align:top}th{background:#f3f4f8}nav{margin-bottom:1em;color:#667}a{color:#2450b2}
.status{display:inline-block;padding:.1em .6em;border-radius:1em;background:#eef;font-weight:600}
.Completed{background:#d8f3dc}.Failed{background:#fbd5d5}.Running{background:#d6e8fb}.Canceled{background:#eee}
.NotResponding{background:#fde9c8}.Starting{background:#fff3c4}svg.chart{background:#fafbfd;border:1px solid #dde}
.muted{color:#778}.error{color:#b00020}.chart{min-height:40px;max-width:1000px}pre{background:#f6f7fa;padding:.5em;overflow:auto;max-height:20em}
.description{margin:0 0 .4em;color:#556}
.rs-chart{display:block;cursor:crosshair;max-width:100%}.rs-legend{font-size:12px;margin:.2em 0 .6em;color:#334}
.rs-legend span{margin-right:1em;white-space:nowrap}.rs-legend i{display:inline-block;width:10px;height:10px;
margin-right:4px;border-radius:2px}.rs-controls label{margin-right:1em}.rs-controls,.toolbar{margin:.4em 0}
.toolbar{display:flex;flex-wrap:wrap;gap:.4em 1.5em;align-items:center;position:sticky;top:0;background:#fff;z-index:1}
details.metric-group>summary{font-weight:600;cursor:pointer;margin:.6em 0}#run-summary .last{color:#334}
.table-wrap{overflow-x:auto;max-width:100%}.rs-picker{margin:.3em 0}
.rs-picker label{margin-right:.8em;white-space:nowrap}
@media (max-width:700px){body{padding:.5em}}
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def url(*segments: str) -> str:
    """A path from segments, each percent-encoded (slashes inside a file name stay slashes)."""
    return "/" + "/".join(quote(s, safe="/") for s in segments)


def json_text(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def page(title: str, body: str, *, scripts: Sequence[str] = (), styles: Sequence[str] = (), live: bool = False) -> str:
    """A whole document; ``live`` pages reload every few seconds where JavaScript is off."""
    head = "".join(f'<link rel="stylesheet" href="{esc(href)}">' for href in styles)
    if live:
        head += '<noscript><meta http-equiv="refresh" content="10"></noscript>'
    tail = "".join(f'<script src="{esc(src)}" defer></script>' for src in scripts)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width,initial-scale=1"><link rel="icon" href="data:,">'
        f"{head}<title>{esc(title)} · runstream</title><style>{_STYLE}</style>{tail}</head>"
        f'<body><nav><a href="/">runstream</a></nav>{body}</body></html>'
    )


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    raw: bool = False,
    raw_headers: bool = False,
    row_attrs: Sequence[str] = (),
) -> str:
    """A table; cells are escaped unless ``raw`` (then the caller escaped them).

    ``row_attrs`` holds ready-made (escaped) attribute text per row, such as ``data-run="..."``.
    """
    head = "".join(f"<th>{h if raw_headers else esc(h)}</th>" for h in headers)
    cell = (lambda c: c) if raw else esc
    body = "".join(
        f"<tr{' ' + row_attrs[i] if i < len(row_attrs) else ''}>"
        + "".join(f"<td>{cell(c)}</td>" for c in row)
        + "</tr>"
        for i, row in enumerate(rows)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _downsample(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """At most about ``_CHART_POINTS`` points, keeping each bucket's min and max so spikes show."""
    if len(points) <= _CHART_POINTS:
        return list(points)
    size = math.ceil(len(points) / (_CHART_POINTS / 2))
    kept: list[tuple[float, float]] = []
    for start in range(0, len(points), size):
        bucket = points[start : start + size]
        low = min(bucket, key=lambda p: p[1])
        high = max(bucket, key=lambda p: p[1])
        kept.extend(sorted({low, high}))
    return kept


def chart_svg(ys: Sequence[Any], xs: Sequence[Any] | None = None, *, label: str = "") -> str:
    """A line chart of the finite numeric points; empty string when there is nothing to draw."""
    xs = xs if xs is not None else range(len(ys))
    points = [
        (float(x), float(y))
        for x, y in zip(xs, ys, strict=False)
        if _is_number(x) and _is_number(y) and math.isfinite(x) and math.isfinite(y)
    ]
    if not points:
        return ""
    points = _downsample(points)
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    sx = (_WIDTH - 2 * _PAD) / ((x1 - x0) or 1)
    sy = (_HEIGHT - 2 * _PAD) / ((y1 - y0) or 1)
    coords = " ".join(f"{_PAD + (x - x0) * sx:.1f},{_HEIGHT - _PAD - (y - y0) * sy:.1f}" for x, y in points)
    shape = (
        f'<polyline fill="none" stroke="#2450b2" stroke-width="1.5" points="{coords}"/>'
        if len(points) > 1
        else f'<circle cx="{coords.split(",")[0]}" cy="{coords.split(",")[1]}" r="3" fill="#2450b2"/>'
    )
    return (
        f'<svg class="chart" role="img" aria-label="{esc(label)}" width="{_WIDTH}" height="{_HEIGHT}" '
        f'viewBox="0 0 {_WIDTH} {_HEIGHT}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{esc(label)}</title>{shape}</svg>"
        f'<div class="muted">y from {_fmt(y0)} to {_fmt(y1)}; x from {_fmt(x0)} to {_fmt(x1)}</div>'
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float)


def _fmt(value: float) -> str:
    return f"{value:.6g}"
