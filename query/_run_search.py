"""Run search: filters, a sort order and keyset pages, built into one parameterised statement.

Metric conditions and metric sorts read the per-series summary that ingest
keeps beside the points (``series.last_value``, ``min_value``, ``max_value``,
migration 0002), so a search over 10,000 runs never touches ``points``.

Syntax (query parameters of ``GET /api/runs``):

* ``where=accuracy>0.9``, ``where=max(loss)<=2``: a scalar metric's last
  (default), ``min(...)`` or ``max(...)`` value against a number, with one of
  ``> >= < <= = !=``; the operator is the last one in the text, so metric
  names may contain anything. Repeat to combine (AND).
* ``sort=-created_at`` (the default, newest first), ``sort=created_at``,
  ``sort=-last(accuracy)``, ``sort=min(loss)`` ...: ``-`` for descending. Runs
  without the metric, or whose value is NaN, come last either way (a NaN never
  meets a condition either).
* ``started_after`` / ``started_before``: ISO-8601 times bounding ``created_at``.
* ``name=``: runs whose display name contains the text, ignoring case (a
  plain substring: ``%`` and ``_`` are themselves, not wildcards).
* ``status=``: one of the run statuses (``runstream.events.STATUSES``).

Cursors are opaque: base64 of the last row's sort key, so a page continues
exactly after the previous one even while runs are added. A cursor the
service did not issue for this sort (a wrong type, a time outside the years
PostgreSQL and Python share, anything over :data:`~._limits.MAX_CURSOR_CHARS`)
is 400 ``bad_cursor``; so is every filter value that cannot mean anything.
"""

# ruff: noqa: S608 - SQL is assembled from constant fragments and whitelisted names; values are $n parameters.

from __future__ import annotations

import base64
import binascii
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from runstream.events import STATUSES

from ._errors import BadRequest
from ._limits import MAX_CURSOR_CHARS, MAX_METRIC_NAME_CHARS, MAX_RUN_NAME_CHARS

__all__ = [
    "MetricCondition",
    "RunSearch",
    "SortKey",
    "parse_condition",
    "parse_name",
    "parse_sort",
    "parse_status",
    "parse_time",
]

_COLUMNS: Final = {"last": "last_value", "min": "min_value", "max": "max_value"}
_OPS: Final = {">": ">", ">=": ">=", "<": "<", "<=": "<=", "=": "=", "!=": "<>"}
_CONDITION: Final = re.compile(r"^(?P<target>.+?)\s*(?P<op>>=|<=|!=|>|<|=)\s*(?P<number>[^<>=!]+)$", re.DOTALL)
_AGGREGATE: Final = re.compile(r"^(last|min|max)\((.+)\)$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class MetricCondition:
    name: str
    aggregate: str  # last | min | max
    op: str  # a key of _OPS
    value: float


@dataclass(frozen=True, slots=True)
class SortKey:
    """``metric is None``: by creation time; else by that metric's aggregate."""

    descending: bool = True
    metric: str | None = None
    aggregate: str = "last"


def _target(text: str, parameter: str) -> tuple[str, str]:
    match = _AGGREGATE.match(text)
    name, aggregate = (match.group(2), match.group(1)) if match else (text, "last")
    if not name or len(name) > MAX_METRIC_NAME_CHARS:
        raise BadRequest(
            f"{parameter}: metric name must have 1 to {MAX_METRIC_NAME_CHARS} characters", parameter=parameter
        )
    return name, aggregate


def parse_condition(raw: str) -> MetricCondition:
    match = _CONDITION.match(raw)
    if match is None:
        raise BadRequest(
            f"where {raw[:80]!r} is not <metric><op><number>, e.g. accuracy>0.9 or max(loss)<=2", parameter="where"
        )
    try:
        value = float(match.group("number"))
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise BadRequest(
            f"where {raw[:80]!r}: {match.group('number')[:40]!r} is not a finite number", parameter="where"
        )
    name, aggregate = _target(match.group("target"), "where")
    return MetricCondition(name, aggregate, match.group("op"), value)


def parse_sort(raw: str | None) -> SortKey:
    if raw is None or raw == "-created_at":
        return SortKey()
    descending = raw.startswith("-")
    body = raw[1:] if descending else raw
    if body == "created_at":
        return SortKey(descending=descending)
    if not _AGGREGATE.match(body):
        raise BadRequest(f"sort {raw[:80]!r} is not [-]created_at or [-]last|min|max(<metric>)", parameter="sort")
    name, aggregate = _target(body, "sort")
    return SortKey(descending=descending, metric=name, aggregate=aggregate)


def parse_status(raw: str | None) -> str | None:
    if raw is None:
        return None
    if raw not in STATUSES:
        raise BadRequest(
            f"status {raw[:40]!r} is not a run status; use one of {', '.join(STATUSES)}", parameter="status"
        )
    return raw


def parse_name(raw: str | None) -> str | None:
    """``name=``: a part of the display names sought, 1 to MAX_RUN_NAME_CHARS characters."""
    if raw is None:
        return None
    if not raw or len(raw) > MAX_RUN_NAME_CHARS:
        raise BadRequest(f"name must have 1 to {MAX_RUN_NAME_CHARS} characters", parameter="name")
    return raw


def parse_time(raw: str | None, parameter: str) -> datetime | None:
    if raw is None:
        return None
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{parameter} {raw[:40]!r} is not an ISO-8601 time", parameter=parameter) from None
    when = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    try:
        # In UTC now, while it can still be refused: 9999-12-31T23:59-01:00 is
        # a valid ISO time that no timestamp (nor asyncpg) can hold.
        return when.astimezone(UTC)
    except OverflowError:
        raise BadRequest(
            f"{parameter} {raw[:40]!r} is outside the years 1 to 9999 in UTC", parameter=parameter
        ) from None


@dataclass
class RunSearch:
    """Everything ``GET /api/runs`` can ask for; :meth:`sql` builds the statement."""

    limit: int
    experiment: str | None = None
    status: str | None = None
    name: str | None = None
    tags: Sequence[tuple[str, str | None]] = ()
    properties: Sequence[tuple[str, str | None]] = ()
    parent_id: uuid.UUID | None = None
    top_level: bool = False  # only runs without a parent
    started_after: datetime | None = None
    started_before: datetime | None = None
    conditions: Sequence[MetricCondition] = ()
    sort: SortKey = field(default_factory=SortKey)
    cursor: str | None = None
    _args: list[Any] = field(default_factory=list, init=False, repr=False)

    def _arg(self, value: Any, cast: str) -> str:
        self._args.append(value)
        return f"${len(self._args)}::{cast}"

    def sql(self, columns: str) -> tuple[str, list[Any]]:
        """The statement (one row more than ``limit``, to tell if a page follows) and its arguments."""
        self._args = []
        where = ["true"]
        if self.experiment is not None:
            where.append(f"e.name = {self._arg(self.experiment, 'text')}")
        if self.status is not None:
            where.append(f"r.status = {self._arg(self.status, 'text')}")
        if self.name is not None:
            where.append(f"strpos(lower(r.display_name), lower({self._arg(self.name, 'text')})) > 0")
        where += self._contains("r.tags", self.tags)
        where += self._contains("r.properties", self.properties)
        if self.parent_id is not None:
            where.append(f"r.parent_id = {self._arg(self.parent_id, 'uuid')}")
        if self.top_level:
            where.append("r.parent_id IS NULL")
        if self.started_after is not None:
            where.append(f"r.created_at >= {self._arg(self.started_after, 'timestamptz')}")
        if self.started_before is not None:
            where.append(f"r.created_at <= {self._arg(self.started_before, 'timestamptz')}")
        for c in self.conditions:
            where.append(
                "EXISTS (SELECT 1 FROM series c WHERE c.run_id = r.id AND c.kind = 'scalar'"
                f" AND c.name = {self._arg(c.name, 'text')}"
                f" AND c.{_COLUMNS[c.aggregate]} {_OPS[c.op]} {self._arg(c.value, 'float8')}"
                # NaN compares as the largest number in PostgreSQL; no condition should hold for it.
                f" AND c.{_COLUMNS[c.aggregate]} <> 'NaN'::float8)"
            )
        join, key = "", "NULL::float8"
        if self.sort.metric is not None:
            join = (
                "LEFT JOIN series sm ON sm.run_id = r.id AND sm.kind = 'scalar'"
                f" AND sm.name = {self._arg(self.sort.metric, 'text')}"
            )
            # NaN ranks with "no value": last, never as the best run.
            key = f"nullif(sm.{_COLUMNS[self.sort.aggregate]}, 'NaN'::float8)"
        if self.cursor is not None:
            where.append(self._after(key))
        direction = "DESC" if self.sort.descending else "ASC"
        order = f"r.created_at {direction}, r.id {direction}"
        if self.sort.metric is not None:
            order = f"{key} {direction} NULLS LAST, {order}"
        limit = self._arg(self.limit + 1, "int")
        statement = (
            f"SELECT {columns}, r.created_at AS sort_created, {key} AS sort_value FROM runs r"
            f" JOIN experiments e ON e.id = r.experiment_id {join}"
            f" WHERE {' AND '.join(where)} ORDER BY {order} LIMIT {limit}"
        )
        return statement, self._args

    def _contains(self, column: str, pairs: Sequence[tuple[str, str | None]]) -> list[str]:
        """Conditions on a jsonb object column: these keys with these values, those keys present."""
        out = []
        with_values = {k: v for k, v in pairs if v is not None}
        if with_values:
            out.append(f"{column} @> {self._arg(with_values, 'jsonb')}")  # the pool's codec encodes it
        present = [k for k, v in pairs if v is None]
        if present:
            out.append(f"{column} ?& {self._arg(present, 'text[]')}")
        return out

    def _after(self, key: str) -> str:
        """Rows strictly after the cursor's row in the sort order."""
        value, created, run_id = decode_cursor(self.cursor or "", by_metric=self.sort.metric is not None)
        cmp = "<" if self.sort.descending else ">"
        tail = f"(r.created_at, r.id) {cmp} ({self._arg(created, 'timestamptz')}, {self._arg(run_id, 'uuid')})"
        if self.sort.metric is None:
            return tail
        if value is None:  # among the runs without the metric, which come last
            return f"({key} IS NULL AND {tail})"
        v = self._arg(value, "float8")
        return f"({key} {cmp} {v} OR ({key} = {v} AND {tail}) OR {key} IS NULL)"

    @staticmethod
    def next_cursor(record: Any) -> str:
        value = record["sort_value"]
        if isinstance(value, float) and not math.isfinite(value):
            value = repr(value)  # NaN and ±Inf as text, so the cursor stays plain JSON
        raw = orjson.dumps([value, record["sort_created"].astimezone(UTC).isoformat(), str(record["id"])])
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *, by_metric: bool) -> tuple[float | None, datetime, uuid.UUID]:
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, created, run_id = orjson.loads(raw)
        if not isinstance(created, str) or not isinstance(run_id, str):
            raise TypeError("time and run id must be strings")
        when = datetime.fromisoformat(created)
        if when.tzinfo is None:
            raise ValueError("naive time")
        when = when.astimezone(UTC)  # OverflowError for a time that is outside the years 1-9999 in UTC
        if isinstance(value, str):
            value = float(value)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or not by_metric):
            raise ValueError("cursor value does not fit the sort")
        return (float(value) if value is not None else None), when, uuid.UUID(run_id)
    except (ValueError, TypeError, OverflowError, binascii.Error, orjson.JSONDecodeError):
        raise BadRequest(
            "cursor is not one this service issued for this sort", code="bad_cursor", parameter="cursor"
        ) from None
