"""CSV answers: ``format=csv`` or ``Accept: text/csv`` on the series and runs endpoints.

Values round-trip exactly: a float is written as Python's ``repr`` (the
shortest text that reads back as the same double), and the non-finite ones
with the JSON API's spelling, ``NaN``, ``Infinity`` and ``-Infinity`` (which
``float()`` reads back too). Booleans are ``true``/``false``, a missing value
an empty field. Text is quoted as RFC 4180 wants, by the :mod:`csv` module.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from typing import Any, Final

from aiohttp import web

from ._errors import BadRequest

__all__ = ["CSV_TYPE", "csv_response", "csv_text", "csv_value", "wants_csv"]

CSV_TYPE: Final = "text/csv"
_NONFINITE: Final = {math.inf: "Infinity", -math.inf: "-Infinity"}


def wants_csv(request: web.Request) -> bool:
    """``format=csv`` (or ``json``) decides; without it, an ``Accept`` naming text/csv does."""
    chosen = request.query.get("format")
    if chosen is not None:
        if chosen not in ("csv", "json"):
            raise BadRequest(f"format must be csv or json, got {chosen[:20]!r}", parameter="format")
        return chosen == "csv"
    return CSV_TYPE in request.headers.get("Accept", "")


def csv_value(value: Any) -> str:
    """One field's text; floats as ``repr`` (exact), non-finite ones as the JSON API spells them."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return _NONFINITE.get(value, repr(value))
    if isinstance(value, dict) and set(value) == {"$float"}:
        return str(value["$float"])
    return str(value)


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([csv_value(v) for v in row] for row in rows)
    return out.getvalue()


def csv_response(header: Sequence[str], rows: Iterable[Sequence[Any]], *, filename: str) -> web.Response:
    response = web.Response(text=csv_text(header, rows), content_type=CSV_TYPE, charset="utf-8")
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    return response
