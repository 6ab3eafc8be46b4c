"""Azure ML v1 ``get_metrics()`` shapes, built from what ingest stores.

What this module reads (the storage contract with ingest):

* ``series.kind = 'scalar'``: one point per ``run.log``, packed many to a row
  of ``point_chunks`` (decoded by :mod:`._points`). ``value_type`` says how to
  read them: ``float`` and ``int`` from the float64 values (an int series
  that later received a float widens to ``float``), ``bool`` from them as
  0/1, ``str`` from the chunk's texts.
* ``list`` / ``row`` / ``table`` / ``image``: one ``series_entries`` row per call,
  ``value`` being the logged list, the ``{column: value}`` row, the
  ``{column: [values]}`` table, or the image's file name (a JSON string, or an
  object with a ``file`` key). Non-finite floats inside are stored in the
  ``{"$float": ...}`` form of :func:`runstream.events.encode_json_value`, which
  is also how the response carries them, so entries pass through untouched.

Shapes returned per metric name:

* scalar logged once -> the bare value; N times -> a list in logging order
  (points ordered by ``time``, then ``ordinal``);
* ``log_list`` once -> the list; N times -> a list of the N lists;
* ``log_row`` / ``log_table`` -> one dict of columns over all rows of all calls:
  ``{col: value}`` when there is exactly one row in total, else
  ``{col: [v, ...]}``; a column missing from a row (for instance one that first
  appears in a later row) holds ``None`` there;
* ``log_image`` once -> the file name; N times -> the list of names.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from runstream.events import encode_json_value

__all__ = ["EMPTY", "SeriesData", "metric_value", "metrics_dict", "scalar_value"]


@dataclass(frozen=True, slots=True)
class SeriesData:
    """One series as fetched: scalar columns or JSON entries, already in order."""

    name: str
    kind: str
    value_type: str | None
    values: Sequence[float | None] = ()
    texts: Sequence[str | None] = ()
    entries: Sequence[Any] = ()


def metrics_dict(series: Iterable[SeriesData]) -> dict[str, Any]:
    """The whole ``get_metrics()`` result; series with nothing logged are left out."""
    result: dict[str, Any] = {}
    for s in series:
        value = metric_value(s)
        if value is not EMPTY:
            result[s.name] = value
    return result


class _Empty:
    pass


EMPTY: Any = _Empty()


def metric_value(s: SeriesData) -> Any:
    """One metric's shape, or the ``EMPTY`` sentinel when nothing was logged."""
    if s.kind == "scalar":
        return _collapse(_scalars(s))
    if s.kind == "list":
        return _collapse(list(s.entries))
    if s.kind in ("row", "table"):
        return _columns(s.entries, expand=s.kind == "table") if s.entries else EMPTY
    if s.kind == "image":
        return _collapse([_image_name(e) for e in s.entries])
    # An unknown kind from a newer ingest: show the raw entries rather than hide them.
    return _collapse(list(s.entries))


def _collapse(values: list[Any]) -> Any:
    if not values:
        return EMPTY
    return values[0] if len(values) == 1 else values


def _scalars(s: SeriesData) -> list[Any]:
    vt = s.value_type
    if vt == "str":
        return list(s.texts)
    if vt == "int":
        return [_int(v) for v in s.values]
    if vt == "bool":
        return [bool(v) if v is not None and v == v else v for v in s.values]
    if all(math.isfinite(v) for v in s.values if v is not None):
        return list(s.values)  # the common case: no per-value work
    return [_float(v) for v in s.values]


def _float(v: float | None) -> Any:
    if v is None or math.isfinite(v):
        return v
    return encode_json_value(v)


def _int(v: float | None) -> Any:
    return int(v) if v is not None and math.isfinite(v) else _float(v)


def _image_name(entry: Any) -> Any:
    if isinstance(entry, dict) and "file" in entry:
        return entry["file"]
    return entry


def _rows(entries: Sequence[Any], expand: bool) -> list[dict[str, Any]]:
    """Every entry as rows: a row entry is one row, a table entry one row per index."""
    rows: list[dict[str, Any]] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        # A table column that is not a list (not something the SDK sends) counts as one value.
        if expand:
            table = {k: v if isinstance(v, list) else [v] for k, v in entry.items()}
            length = max((len(v) for v in table.values()), default=0)
            rows.extend({k: (v[i] if i < len(v) else None) for k, v in table.items()} for i in range(length))
        else:
            rows.append(entry)
    return rows


def _columns(entries: Sequence[Any], *, expand: bool) -> dict[str, Any]:
    rows = _rows(entries, expand)
    order: dict[str, None] = {}
    for entry in entries:
        if isinstance(entry, dict):
            order.update(dict.fromkeys(entry))
    if len(rows) == 1:
        return {c: rows[0].get(c) for c in order}
    return {c: [row.get(c) for row in rows] for c in order}


def scalar_value(value_type: str | None, value: float | None, text: str | None) -> Any:
    """One stored point as its JSON value."""
    if value_type == "str":
        return text
    if value_type == "int":
        return _int(value)
    if value_type == "bool":
        return bool(value) if value is not None and value == value else value
    return _float(value)
