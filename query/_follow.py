"""Following committed data: the filters, the resumable cursor and the reads behind ``/api/changes/stream``.

A :class:`Follower` serves one subscriber. Each round it lists the runs the
:class:`FollowFilter` matches (experiment, run ids, tags) and their scalar
series (metric names or globs), reads each series' points past the
subscriber's position, and turns them into events: ``run`` when a run's
details (status, end, tags, properties, name, error) changed since the
subscriber last saw them, ``points`` per run with the new points by metric.

Position and cursor. A series' position is the (time, ordinal) of the last
point sent, the API's point order (:mod:`._points`); a run's is a short hash
of the details sent. The cursor is both maps, compressed, opaque to clients,
and sent as the SSE ``id`` of every event, so a client that reconnects with
the last id it received (``Last-Event-ID``, or ``?cursor=``) gets every
point stored since, once. A series the cursor does not name is new since it
was issued: it is read from its first point. Without a cursor a stream
starts ``from=now`` (every matching series at its stored end) or
``from=start`` (everything stored, then what comes).

What the position cannot see: a point stored *behind* one already sent, in
(time, ordinal) order, which only happens when several producer sessions log
the same metric of one run with clocks apart, or when a late spool replays
points older than newer ones of the same metric from another session.

Rounds run when ingest announces a commit (:meth:`.LiveHub.changed`), and
every ``fallback_seconds`` regardless; a round reads only series whose point
count moved since the previous one. :class:`FollowPacing` spaces each
stream's rounds: at least :data:`MIN_FOLLOW_INTERVAL_SECONDS` apart (a point
waits at most that long beyond ingest), and further apart as streams are
added, so that all of them together make at most
:data:`MAX_FOLLOW_ROUNDS_PER_SECOND` rounds: many subscribers cost delay,
not an overloaded database.
"""

# ruff: noqa: S608 - the SQL is constant text; every value is a $n parameter.

from __future__ import annotations

import base64
import binascii
import re
import uuid
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg
import orjson

from ._db import Database
from ._errors import BadRequest
from ._live import LiveEvent, end_cursors, run_event
from ._points import LazyPointColumns, read_after
from ._series import json_values

__all__ = [
    "FOLLOW_STARTS",
    "FollowPacing",
    "MAX_FOLLOW_CURSOR_CHARS",
    "MAX_FOLLOW_RUNS",
    "FollowCursor",
    "FollowFilter",
    "Follower",
    "parse_metric_pattern",
    "parse_tag",
]

#: Where a stream without a cursor starts.
FOLLOW_STARTS: Final = ("now", "start")
#: The newest runs a stream follows when its filter matches more.
MAX_FOLLOW_RUNS: Final = 1000
#: The longest cursor taken back (it names every followed series; narrow the filter to shorten it).
MAX_FOLLOW_CURSOR_CHARS: Final = 24_000
#: Points of one series per event; a series further behind is caught up over several events.
MAX_FOLLOW_POINTS: Final = 10_000
#: The least time between two rounds of one stream.
MIN_FOLLOW_INTERVAL_SECONDS: Final = 0.05
#: Rounds per second of all the streams of one query process together, at most.
MAX_FOLLOW_ROUNDS_PER_SECOND: Final = 200.0
_CURSOR_VERSION: Final = 1


class FollowPacing:
    """How far apart each stream's rounds are, from how many streams are open (see the module docstring)."""

    def __init__(
        self,
        *,
        min_interval_seconds: float = MIN_FOLLOW_INTERVAL_SECONDS,
        max_rounds_per_second: float = MAX_FOLLOW_ROUNDS_PER_SECOND,
    ) -> None:
        self.min_interval_seconds = min_interval_seconds
        self.max_rounds_per_second = max_rounds_per_second
        self.streams = 0

    def spacing_seconds(self) -> float:
        return max(self.min_interval_seconds, self.streams / self.max_rounds_per_second)


def parse_metric_pattern(raw: str, parameter: str = "metric") -> re.Pattern[str]:
    """A metric name, or a glob: ``*`` any text, ``?`` one character, ``[abc]``/``[!abc]`` one of a set (no ranges).

    ``[`` without its ``]`` is a 400 naming the parameter and the position.
    """
    if not raw:
        raise BadRequest(f"{parameter} is empty; give a metric name or a glob such as 'loss/*'", parameter=parameter)
    out, i = [], 0
    while i < len(raw):
        char = raw[i]
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[":
            j = i + 2 if raw[i + 1 : i + 2] == "!" else i + 1
            end = raw.find("]", j + 1 if raw[j : j + 1] == "]" else j)  # a ']' first is a member, as in fnmatch
            if end < 0:
                raise BadRequest(
                    f"{parameter} {raw[:80]!r}: '[' at position {i} has no closing ']'", parameter=parameter
                )
            body = raw[i + 1 : end]
            negate = body.startswith("!")
            out.append("[" + ("^" if negate else "") + re.escape(body[1:] if negate else body) + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def parse_tag(raw: str, parameter: str = "tag") -> tuple[str, str | None]:
    """``key`` (the tag is set) or ``key:value`` (set to that value)."""
    key, sep, value = raw.partition(":")
    if not key:
        raise BadRequest(
            f"{parameter} {raw[:80]!r}: no key before position {len(key)}; use {parameter}=key or key:value",
            parameter=parameter,
        )
    return key, value if sep else None


@dataclass(frozen=True, slots=True)
class FollowFilter:
    """Which runs and metrics a stream follows; no pattern means every scalar metric."""

    experiment: str | None = None
    run_ids: tuple[uuid.UUID, ...] = ()
    metrics: tuple[re.Pattern[str], ...] = ()
    tags: tuple[tuple[str, str | None], ...] = ()

    def __post_init__(self) -> None:
        if self.experiment is None and not self.run_ids:
            raise BadRequest("give experiment or run (or both): a stream follows named runs", parameter="experiment")

    def wants(self, metric: str) -> bool:
        return not self.metrics or any(p.fullmatch(metric) for p in self.metrics)


@dataclass(slots=True)
class FollowCursor:
    """Per run the hash of the details sent; per series id the (time, ordinal) of the last point sent."""

    runs: dict[str, str] = field(default_factory=dict)
    series: dict[int, tuple[float, int]] = field(default_factory=dict)

    def encode(self) -> str:
        doc = {"v": _CURSOR_VERSION, "r": self.runs, "s": {str(k): list(v) for k, v in self.series.items()}}
        return base64.urlsafe_b64encode(zlib.compress(orjson.dumps(doc), 6)).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, text: str, parameter: str = "cursor") -> FollowCursor:
        if len(text) > MAX_FOLLOW_CURSOR_CHARS:
            raise BadRequest(
                f"{parameter} is over {MAX_FOLLOW_CURSOR_CHARS} characters", code="bad_cursor", parameter=parameter
            )
        try:
            doc = orjson.loads(zlib.decompress(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), bufsize=4096))
            if doc["v"] != _CURSOR_VERSION:
                raise ValueError(doc["v"])
            runs = {str(uuid.UUID(k)): str(v)[:32] for k, v in doc["r"].items()}
            series = {int(k): (float(t), int(o)) for k, (t, o) in doc["s"].items()}
        except (ValueError, TypeError, KeyError, AttributeError, binascii.Error, zlib.error):
            raise BadRequest(
                f"{parameter} is not a cursor this service issued", code="bad_cursor", parameter=parameter
            ) from None
        return cls(runs, series)


@dataclass(frozen=True, slots=True)
class _Series:
    id: int
    run_id: str
    name: str
    value_type: str | None
    point_count: int


class Follower:
    """One subscriber's position and the reads that move it (see the module docstring)."""

    def __init__(self, pool: asyncpg.Pool, db: Database, follow: FollowFilter, cursor: FollowCursor | None) -> None:
        self._pool = pool
        self._db = db
        self._filter = follow
        self.cursor = cursor or FollowCursor()
        #: Point counts seen per series: a series whose count did not move needs no read.
        self._counts: dict[int, int] = {}
        #: Set when a round left points unread (the per-event limit): read again at once.
        self.behind = False

    async def start_at_end(self) -> None:
        """A fresh stream from now: every matching series' position is its stored end."""
        series = await self._series(list(await self._runs()))
        self.cursor.series.update(await end_cursors(self._pool, [s.id for s in series]))
        self._counts.update({s.id: s.point_count for s in series})

    async def poll(self) -> list[tuple[LiveEvent, str]]:
        """One round: each changed run's details, then the new points per run, each with the cursor after it."""
        runs = await self._runs()
        series = await self._series(list(runs))
        # Forget what the filter no longer matches (a run past the newest MAX_FOLLOW_RUNS, a deleted one).
        self.cursor.runs = {k: v for k, v in self.cursor.runs.items() if k in runs}
        listed = {s.id for s in series}
        self.cursor.series = {k: v for k, v in self.cursor.series.items() if k in listed}
        out: list[tuple[LiveEvent, str]] = []
        for run_id, digest in runs.items():
            if self.cursor.runs.get(run_id) == digest:
                continue
            run = await self._db.get_run(uuid.UUID(run_id))
            self.cursor.runs[run_id] = digest
            if run is not None:
                out.append((run_event(run), self.cursor.encode()))
        out += await self._points([s for s in series if self._counts.get(s.id) != s.point_count])
        return out

    async def _runs(self) -> dict[str, str]:
        """The matching runs, newest first, with a digest of the details a ``run`` event reports."""
        f = self._filter
        tag_values = {k: v for k, v in f.tags if v is not None}
        records = await self._pool.fetch(
            """
            SELECT r.id, left(md5(concat_ws('|', r.status, r.display_name, r.description, r.ended_at::text,
                                            r.error::text, r.tags::text, r.properties::text)), 16) AS digest
            FROM runs r JOIN experiments e ON e.id = r.experiment_id
            WHERE ($1::text IS NULL OR e.name = $1) AND (cardinality($2::uuid[]) = 0 OR r.id = ANY($2))
              AND r.tags @> $3::jsonb AND r.tags ?& $4::text[]
            ORDER BY r.created_at DESC, r.id DESC LIMIT $5
            """,
            f.experiment,
            list(f.run_ids),
            tag_values,
            [k for k, v in f.tags if v is None],
            MAX_FOLLOW_RUNS,
        )
        return {str(r["id"]): r["digest"] for r in records}

    async def _series(self, run_ids: Sequence[str]) -> list[_Series]:
        records = await self._pool.fetch(
            "SELECT id, run_id, name, value_type, point_count FROM series"
            " WHERE run_id = ANY($1::uuid[]) AND kind = 'scalar' AND point_count > 0",
            run_ids,
        )
        return [
            _Series(r["id"], str(r["run_id"]), r["name"], r["value_type"], r["point_count"])
            for r in records
            if self._filter.wants(r["name"])
        ]

    async def _points(self, series: list[_Series]) -> list[tuple[LiveEvent, str]]:
        if not series:
            self.behind = False
            return []
        by_id = {s.id: s for s in series}
        # A series the cursor does not name is new since it was issued (or since the stream started).
        positions = {s.id: self.cursor.series.get(s.id, (-float("inf"), -(2**63))) for s in series}
        found = await read_after(self._pool, positions, limit=MAX_FOLLOW_POINTS)
        self.behind = any(len(points) >= MAX_FOLLOW_POINTS for points in found.values())
        per_run: dict[str, list[int]] = defaultdict(list)
        for series_id in found:
            per_run[by_id[series_id].run_id].append(series_id)
        for s in series:
            if s.id not in found or len(found[s.id]) < MAX_FOLLOW_POINTS:
                self._counts[s.id] = s.point_count
        return [self._points_event(run_id, ids, by_id, found) for run_id, ids in per_run.items()]

    def _points_event(
        self, run_id: str, series_ids: list[int], by_id: dict[int, _Series], found: dict[int, LazyPointColumns]
    ) -> tuple[LiveEvent, str]:
        metrics: dict[str, dict[str, list[Any]]] = {}
        for series_id in series_ids:
            s, points = by_id[series_id], found[series_id]
            metrics[s.name] = {
                "steps": points.steps.tolist(),
                "times": points.times.tolist(),
                "values": json_values(s.value_type, points.values),
            }
            self.cursor.series[series_id] = (float(points.times[-1]), int(points.ordinals[-1]))
        return LiveEvent("points", {"run_id": run_id, "metrics": metrics}), self.cursor.encode()
