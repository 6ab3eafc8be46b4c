"""One scalar series as columns: a range at full resolution (keyset pages) or downsampled.

Downsampling splits the requested time range into ``max_points / 2`` equal
buckets and keeps, per bucket, the point with the lowest and the point with the
highest value (each with its own step and time), so spikes and the series'
envelope survive at any zoom. It runs in PostgreSQL as one aggregate: the rows
never travel to Python. ``min(ARRAY[value, time, step, ordinal])`` is an
arg-min: arrays compare element by element, so the whole winning point comes
back. PostgreSQL sorts NaN above every number, so a NaN in a bucket shows up as
that bucket's maximum rather than vanishing.

That aggregate reads every point in the range (about 250 ms for a million),
so downsampled answers are cached per (series, range, max_points) together
with the run's *data version*: its number of series and the sum of their
``point_count``, which ingest updates in the same transaction as the points
(migration 0002). A cached answer is served only while that version is
unchanged, so it is never stale; a finished run's charts are then answered
from memory.

Full-resolution pages are ordered by (time, ordinal) and continue after the
last (time, ordinal) seen; the cursor carries that pair.
"""

# ruff: noqa: S608 - the f-strings only join constant SQL fragments; every value is a $n parameter.

from __future__ import annotations

import base64
import binascii
import math
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final

import asyncpg
import orjson

from runstream.events import encode_json_value

from ._errors import BadRequest

__all__ = ["SeriesRange", "SeriesReader", "decode_point_cursor"]


@dataclass(frozen=True, slots=True)
class SeriesRange:
    """Which points: steps and times are inclusive bounds, ``None`` for open."""

    start_step: int | None = None
    end_step: int | None = None
    start_time: float | None = None
    end_time: float | None = None


def _encode_cursor(time: float, ordinal: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([time, ordinal])).decode().rstrip("=")


def decode_point_cursor(cursor: str) -> tuple[float, int]:
    try:
        time, ordinal = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(time, float | int) or type(ordinal) is not int or not math.isfinite(time):
            raise ValueError("bad cursor fields")
        return float(time), ordinal
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise BadRequest("cursor is not one this service issued", code="bad_cursor", parameter="cursor") from None


_RANGE_SQL: Final = """
    p.series_id = $1
    AND ($2::bigint IS NULL OR p.step >= $2) AND ($3::bigint IS NULL OR p.step <= $3)
    AND ($4::float8 IS NULL OR p.time >= $4) AND ($5::float8 IS NULL OR p.time <= $5)
"""


#: Points held by the downsample cache across all entries (about 100 bytes each in Python).
_CACHE_POINTS: Final = 250_000


class SeriesReader:
    """Reads scalar series through a pool it does not own; caches downsampled answers."""

    def __init__(self, pool: asyncpg.Pool, *, cache_points: int = _CACHE_POINTS) -> None:
        self._pool = pool
        self._cache: OrderedDict[tuple[Any, ...], tuple[tuple[int, int], dict[str, Any]]] = OrderedDict()
        self._cache_points = cache_points
        self._cached_points = 0
        self.cache_hits = 0

    async def data_version(self, run_id: uuid.UUID) -> tuple[int, int]:
        """Changes whenever ingest stores scalar points for the run: (series, points) counts."""
        record = await self._pool.fetchrow(
            "SELECT count(*) AS series, coalesce(sum(point_count), 0) AS points FROM series WHERE run_id = $1",
            run_id,
        )
        return int(record["series"]), int(record["points"])

    async def downsample_cached(
        self, run_id: uuid.UUID, series_id: int, value_type: str | None, rng: SeriesRange, *, max_points: int
    ) -> dict[str, Any]:
        key = (series_id, value_type, rng, max_points)
        version = await self.data_version(run_id)
        hit = self._cache.get(key)
        if hit is not None and hit[0] == version:
            self._cache.move_to_end(key)
            self.cache_hits += 1
            return hit[1]
        result = await self.downsample(series_id, value_type, rng, max_points=max_points)
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

    async def find(self, run_id: uuid.UUID, name: str) -> asyncpg.Record | None:
        return await self._pool.fetchrow(
            "SELECT id, kind, value_type FROM series WHERE run_id = $1 AND name = $2", run_id, name
        )

    async def page(
        self, series_id: int, value_type: str | None, rng: SeriesRange, *, limit: int, after: tuple[float, int] | None
    ) -> dict[str, Any]:
        """Up to ``limit`` points in logging order, after the cursor's point."""
        column = "text_value" if value_type == "str" else "value"
        after_time, after_ordinal = after if after else (None, None)
        range_args = (series_id, rng.start_step, rng.end_step, rng.start_time, rng.end_time)
        # One snapshot for both statements, so the cursor names the page's real last point.
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            record = await conn.fetchrow(
                f"""
                SELECT array_agg(o.step) AS steps, array_agg(o.time) AS times, array_agg(o.v) AS vals
                FROM (
                    SELECT p.step, p.time, p.{column} AS v FROM points p
                    WHERE {_RANGE_SQL}
                      AND ($6::float8 IS NULL OR (p.time, p.ordinal) > ($6::float8, $7::bigint))
                    ORDER BY p.time, p.ordinal
                    LIMIT $8
                ) o
                """,
                *range_args,
                after_time,
                after_ordinal,
                limit + 1,
            )
            steps, times, vals = (record[k] or [] for k in ("steps", "times", "vals"))
            cursor = None
            if len(steps) > limit:
                last_time = times[limit - 1]
                cursor = _encode_cursor(last_time, await self._last_ordinal(conn, range_args, times, limit, after))
        return _columns(value_type, steps[:limit], times[:limit], vals[:limit], downsampled=False, cursor=cursor)

    @staticmethod
    async def _last_ordinal(
        conn: asyncpg.Connection,
        range_args: tuple[Any, ...],
        times: list[float],
        limit: int,
        after: tuple[float, int] | None,
    ) -> int:
        """The ordinal of the page's last point: the k-th among the page's points sharing its time.

        Fetching every point's ordinal would cost a fourth array on each page;
        this is one short index range read instead.
        """
        last_time = times[limit - 1]
        k = 0
        while k < limit and times[limit - 1 - k] == last_time:
            k += 1
        floor = after[1] if after and after[0] == last_time else None
        ordinal: int = await conn.fetchval(
            f"""
            SELECT p.ordinal FROM points p
            WHERE {_RANGE_SQL} AND p.time = $6 AND ($7::bigint IS NULL OR p.ordinal > $7)
            ORDER BY p.ordinal OFFSET $8 LIMIT 1
            """,
            *range_args,
            last_time,
            floor,
            k - 1,
        )
        return ordinal

    async def tail(self, series_id: int, value_type: str | None, count: int) -> list[Any]:
        """The last ``count`` values in logging order."""
        column = "text_value" if value_type == "str" else "value"
        records = await self._pool.fetch(
            f"SELECT p.{column} AS v FROM points p WHERE p.series_id = $1"
            " ORDER BY p.time DESC, p.ordinal DESC LIMIT $2",
            series_id,
            count,
        )
        return _values(value_type, [r["v"] for r in reversed(records)])

    async def downsample(
        self, series_id: int, value_type: str | None, rng: SeriesRange, *, max_points: int
    ) -> dict[str, Any]:
        """At most ``max_points`` points: the whole range when it is that small, else min/max per bucket."""
        async with self._pool.acquire() as conn:
            small = await conn.fetchval(
                f"SELECT count(*) <= $6 FROM (SELECT 1 FROM points p WHERE {_RANGE_SQL} LIMIT $6 + 1) x",
                series_id,
                rng.start_step,
                rng.end_step,
                rng.start_time,
                rng.end_time,
                max_points,
            )
            if small:
                return await self.page(series_id, value_type, rng, limit=max_points, after=None)
            bounds = await conn.fetchrow(
                f"SELECT min(p.time) AS t0, max(p.time) AS t1 FROM points p WHERE {_RANGE_SQL}",
                series_id,
                rng.start_step,
                rng.end_step,
                rng.start_time,
                rng.end_time,
            )
            buckets = max(1, max_points // 2)
            width = (bounds["t1"] - bounds["t0"]) / buckets or 1.0
            records = await conn.fetch(
                f"""
                SELECT min(ARRAY[p.value, p.time, p.step, p.ordinal]) AS lo,
                       max(ARRAY[p.value, p.time, p.step, p.ordinal]) AS hi
                FROM points p WHERE {_RANGE_SQL}
                GROUP BY least(floor((p.time - $6) / $7), $8 - 1)
                ORDER BY least(floor((p.time - $6) / $7), $8 - 1)
                """,
                series_id,
                rng.start_step,
                rng.end_step,
                rng.start_time,
                rng.end_time,
                bounds["t0"],
                width,
                buckets,
            )
        steps: list[int] = []
        times: list[float] = []
        vals: list[float] = []
        for record in records:
            lo, hi = record["lo"], record["hi"]
            # Both extremes, in time order; one point when they are the same point.
            pair = [lo] if (lo[1], lo[3]) == (hi[1], hi[3]) else sorted((lo, hi), key=lambda a: (a[1], a[3]))
            for value, time, step, _ in pair:
                steps.append(int(step))
                times.append(time)
                vals.append(value)
        return _columns(value_type, steps, times, vals, downsampled=True, cursor=None)


def _columns(
    value_type: str | None,
    steps: list[int],
    times: list[float],
    vals: list[Any],
    *,
    downsampled: bool,
    cursor: str | None,
) -> dict[str, Any]:
    return {
        "value_type": value_type,
        "steps": steps,
        "times": times,
        "values": _values(value_type, vals),
        "downsampled": downsampled,
        "next_cursor": cursor,
    }


def _values(value_type: str | None, vals: list[Any]) -> list[Any]:
    if value_type == "str":
        return vals
    if value_type == "int":
        return [int(v) if v is not None and math.isfinite(v) else encode_json_value(v) for v in vals]
    if value_type == "bool":
        return [bool(v) if v is not None and v == v else v for v in vals]
    if all(v is None or math.isfinite(v) for v in vals):
        return vals
    return [encode_json_value(v) for v in vals]
