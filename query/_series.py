"""One scalar series as columns: a range at full resolution (keyset pages) or downsampled.

Points come from ``point_chunks`` as numpy columns in (time, ordinal) order
(:mod:`._points`); no Python code runs per point, but to tag a series'
non-finite values for JSON.

Downsampling is M4 over the x-axis being drawn (steps by default, or times):
per equal bucket of that axis, the bucket's first, last, lowest and highest
point, each with its own step and time, with as many buckets as keep the
answer between 90% and 100% of ``max_points`` (:mod:`._m4`; where no grid can,
further points fill it, counted as ``filled``). The answer is in the order of
that axis and says which buckets it used; a range that holds no more than
``max_points`` comes back whole.

Reading a million points from PostgreSQL and decoding them takes tens of
milliseconds, so two caches keyed by the run's *data version* (its number of
series and the sum of their ``point_count``, which ingest updates in the same
transaction as the points, migration 0002) keep it from happening twice: the
answers, per (series, range, max_points, axis), and the whole series decoded
(:mod:`._decoded`), from which any other width, zoom or full page is cut. An
entry is served only while that version is unchanged, so it is never stale;
a finished run's charts are then answered from memory.

Full-resolution pages are ordered by (time, ordinal) and continue after the
last (time, ordinal) seen; the cursor carries that pair.
"""

from __future__ import annotations

import base64
import binascii
import math
import uuid
from collections import OrderedDict
from typing import Any, Final

import asyncpg
import numpy as np
import numpy.typing as npt
import orjson

from ._decoded import DecodedSeries
from ._errors import BadRequest
from ._limits import MAX_CURSOR_CHARS
from ._m4 import Buckets, m4
from ._metrics import scalar_value
from ._points import LazyPointColumns, SeriesRange, first_points, read_series

__all__ = ["X_AXES", "SeriesRange", "SeriesReader", "decode_point_cursor", "json_values"]

_OPEN: Final = SeriesRange()

#: The x-axes a series can be downsampled over: its steps, or its times (wall or relative, alike).
X_AXES: Final = ("step", "time")


def _encode_cursor(time: float, ordinal: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([time, ordinal])).decode().rstrip("=")


def decode_point_cursor(cursor: str) -> tuple[float, int]:
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError("too long")
        time, ordinal = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if isinstance(time, bool) or not isinstance(time, float | int) or type(ordinal) is not int:
            raise TypeError("bad cursor fields")
        if not math.isfinite(float(time)) or not -(2**63) <= ordinal < 2**63:
            raise ValueError("cursor fields out of range")
        return float(time), ordinal
    except (ValueError, TypeError, OverflowError, binascii.Error, orjson.JSONDecodeError):
        raise BadRequest("cursor is not one this service issued", code="bad_cursor", parameter="cursor") from None


#: Points held by the downsample cache across all entries (about 100 bytes each in Python).
_CACHE_POINTS: Final = 250_000
#: Points of whole series kept decoded (24 bytes each, so about 48 MB): a long run's series, or many short ones.
_DECODED_POINTS: Final = 2_000_000


class SeriesReader:
    """Reads scalar series through a pool it does not own; caches downsampled answers and decoded series."""

    def __init__(
        self, pool: asyncpg.Pool, *, cache_points: int = _CACHE_POINTS, decoded_points: int = _DECODED_POINTS
    ) -> None:
        self._pool = pool
        self.decoded = DecodedSeries(max_points=decoded_points)
        self._cache: OrderedDict[tuple[Any, ...], tuple[tuple[int, int], dict[str, Any]]] = OrderedDict()
        self._cache_points = cache_points
        self._cached_points = 0
        self.cache_hits = 0
        self.cache_misses = 0

    async def data_version(self, run_id: uuid.UUID) -> tuple[int, int]:
        """Changes whenever ingest stores scalar points for the run: (series, points) counts."""
        series, points = await self._pool.fetchrow(  # an aggregate: always one row
            "SELECT count(*), coalesce(sum(point_count), 0) FROM series WHERE run_id = $1",
            run_id,
        ) or (0, 0)
        return int(series), int(points)

    async def data_versions(self, run_ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[int, int]]:
        """:meth:`data_version` of each run in one query (a compare chart's runs: up to 100)."""
        records = await self._pool.fetch(
            "SELECT run_id, count(*) AS series, coalesce(sum(point_count), 0) AS points FROM series"
            " WHERE run_id = ANY($1::uuid[]) GROUP BY run_id",
            run_ids,
        )
        found = {r["run_id"]: (int(r["series"]), int(r["points"])) for r in records}
        return {run_id: found.get(run_id, (0, 0)) for run_id in run_ids}

    async def downsample_cached(
        self,
        run_id: uuid.UUID,
        series_id: int,
        value_type: str | None,
        rng: SeriesRange,
        *,
        max_points: int,
        x_axis: str = "step",
        version: tuple[int, int] | None = None,
    ) -> dict[str, Any]:
        """M4 of the series over ``rng`` (cached); ``version``, the run's data version if the caller read it."""
        key = (series_id, value_type, rng, max_points, x_axis)
        if version is None:
            version = await self.data_version(run_id)
        hit = self._cache.get(key)
        if hit is not None and hit[0] == version:
            self._cache.move_to_end(key)
            self.cache_hits += 1
            return hit[1]
        self.cache_misses += 1
        points = await self._points(run_id, series_id, rng, version)
        result = _downsampled(value_type, points, max_points, x_axis)
        if hit is not None:
            self._forget(key)
        self._cache[key] = (version, result)
        self._cached_points += len(result["steps"])
        # Least recently used first, until the cache is within its budget of points.
        while self._cached_points > self._cache_points and self._cache:
            self._forget(next(iter(self._cache)))
        return result

    def _forget(self, key: tuple[Any, ...]) -> None:
        _, result = self._cache.pop(key)
        self._cached_points -= len(result["steps"])

    @property
    def cached_points(self) -> int:
        return self._cached_points

    async def find(self, run_ids: list[uuid.UUID], name: str) -> dict[uuid.UUID, asyncpg.Record]:
        """The series ``name`` of each run that has it: id, kind, value_type and point_count."""
        records = await self._pool.fetch(
            "SELECT run_id, id, kind, value_type, point_count FROM series WHERE run_id = ANY($1::uuid[]) AND name = $2",
            run_ids,
            name,
        )
        return {r["run_id"]: r for r in records}

    async def scalar_metrics(self, run_ids: list[uuid.UUID]) -> list[tuple[str, int]]:
        """The numeric scalar metrics of the runs, with their points summed over the runs: most logged first."""
        records = await self._pool.fetch(
            "SELECT name, sum(point_count)::bigint AS points FROM series"
            " WHERE run_id = ANY($1::uuid[]) AND kind = 'scalar' AND value_type <> 'str' AND point_count > 0"
            " GROUP BY name ORDER BY points DESC, name",
            run_ids,
        )
        return [(r["name"], int(r["points"])) for r in records]

    async def _points(
        self, run_id: uuid.UUID, series_id: int, rng: SeriesRange, version: tuple[int, int]
    ) -> LazyPointColumns:
        """Every point of the series in ``rng``: from the decoded series if held at ``version``, else read."""
        held = self.decoded.get(series_id, version)
        if held is None:
            if rng != _OPEN:
                return await read_series(self._pool, series_id, rng)
            held = await self._read_whole(series_id, version)
        return held.within(rng)

    async def _read_whole(self, series_id: int, version: tuple[int, int]) -> LazyPointColumns:
        """The whole series, read and kept decoded (see :mod:`._decoded`); ``version`` read before it."""
        points = await read_series(self._pool, series_id)
        self.decoded.put(series_id, version, points)
        return points

    async def page(
        self,
        run_id: uuid.UUID,
        series_id: int,
        value_type: str | None,
        rng: SeriesRange,
        *,
        limit: int,
        after: tuple[float, int] | None,
        point_count: int,
        version: tuple[int, int] | None = None,
    ) -> dict[str, Any]:
        """Up to ``limit`` points in logging order, after the cursor's point.

        A series held decoded, or one that fits a page whole (by ``point_count``), is sliced from the
        whole; otherwise only the chunks around the page are read.
        """
        if version is None:
            version = await self.data_version(run_id)
        held = self.decoded.get(series_id, version)
        if held is None and rng == _OPEN and after is None and point_count <= limit:
            held = await self._read_whole(series_id, version)
        if held is not None:
            points = held.within(rng).after(after)
            if len(points) > limit + 1:
                points = points.take(slice(0, limit + 1))
        else:
            async with self._pool.acquire() as conn:
                points = await first_points(conn, series_id, rng, limit=limit + 1, after=after)
        cursor = None
        if len(points) > limit:
            points = points.take(slice(0, limit))
            cursor = _encode_cursor(float(points.times[-1]), int(points.ordinals[-1]))
        return _columns(value_type, points, downsampled=False, cursor=cursor)

    async def tail(self, series_id: int, value_type: str | None, count: int) -> list[Any]:
        """The last ``count`` values in logging order."""
        async with self._pool.acquire() as conn:
            points = await first_points(conn, series_id, SeriesRange(), limit=count, newest=True)
        return json_values(value_type, points.values)


def _downsampled(value_type: str | None, points: LazyPointColumns, max_points: int, x_axis: str) -> dict[str, Any]:
    """At most ``max_points`` points: the whole range when it is that small, else M4 over ``x_axis``."""
    if len(points) <= max_points:
        return _columns(value_type, points, downsampled=False, cursor=None)
    kept, buckets = _downsample(points, max_points, x_axis)
    return _columns(value_type, kept, downsampled=True, cursor=None, buckets=buckets, x_axis=x_axis)


def _downsample(points: LazyPointColumns, max_points: int, x_axis: str) -> tuple[LazyPointColumns, Buckets]:
    """M4 of ``points`` (in time order) over steps or times, in the order of that axis."""
    if x_axis == "time":
        positions, buckets = m4(points.times, points.values, max_points, integral=False)
        return points.take(positions), buckets
    steps = points.steps
    # Steps usually rise with time; when they do not (a resumed run), order by step, ties by time.
    order = None if bool((np.diff(steps) >= 0).all()) else np.argsort(steps, kind="stable")
    ordered = points if order is None else points.take(order)
    positions, buckets = m4(ordered.steps, ordered.values, max_points, integral=True)
    return ordered.take(positions), buckets


def _columns(
    value_type: str | None,
    points: LazyPointColumns,
    *,
    downsampled: bool,
    cursor: str | None,
    buckets: Buckets | None = None,
    x_axis: str = "step",
) -> dict[str, Any]:
    # Pages hold up to a million points: numpy columns go to JSON as they are (see ._json),
    # and stay compact in the downsample cache.
    return {
        "value_type": value_type,
        "steps": points.steps,
        "times": points.times,
        "values": _json_array(value_type, points.values),
        "downsampled": downsampled,
        "buckets": None
        if buckets is None
        else {"x_axis": x_axis, "start": buckets.start, "width": buckets.width, "filled": buckets.filled},
        "next_cursor": cursor,
    }


def json_values(value_type: str | None, values: npt.NDArray[Any]) -> list[Any]:
    """Stored values as JSON values of the series' type."""
    out = _json_array(value_type, values)
    return out if isinstance(out, list) else out.tolist()


def _json_array(value_type: str | None, values: npt.NDArray[Any]) -> npt.NDArray[Any] | list[Any]:
    """Stored values as JSON values of the series' type: a numpy array when all are finite numbers, else a list.

    numpy decides in one pass that no value needs a second look; only
    non-finite ones get the ``{"$float": ...}`` tag, one by one.
    """
    if value_type == "str":
        return values.tolist()  # type: ignore[no-any-return]  # numpy types tolist() as Any
    if np.isfinite(values).all():
        if value_type == "int":
            return values.astype(np.int64)
        return values != 0 if value_type == "bool" else values
    return [scalar_value(value_type, v, None) for v in values.tolist()]
