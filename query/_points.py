"""Scalar points from ``point_chunks``, decoded into numpy columns in (time, ordinal) order.

Ingest packs a series' points many to a row (:mod:`runstream.chunks`: at most
10,000 points, usually one row per series per flush). Every read of scalar
points in the query service goes through here, so the order of points lives
in one place:

* rows are selected by their per-chunk bounds (``step_min/step_max``,
  ``time_start/time_end``, where ``time_start`` is the least time in the chunk
  and ``time_end`` the greatest), within the day partitions the series has
  chunks in (``series.first_day .. last_day``); a chunk that overlaps a range
  may hold points outside it, so the same bounds are applied again per point;
* rows in the usual encoding (step and ordinal progressions, microsecond time
  deltas) are decoded all at once, with the arithmetic of
  :func:`runstream.chunks.decode_chunk` over whole arrays; any other row goes
  through :func:`runstream.chunks.decode_row`;
* chunk bounds are compared with a microsecond of slack: chunks written
  before the codec stored its bounds as decoded (rounded to the microsecond
  by the delta encoding) hold the exact logged times there, so a bound
  compared exactly could skip one that holds a point just inside a range or
  just past a cursor;
* the API's order is (time, ordinal). Chunks read by ``time_start`` and
  concatenated are already in that order when they do not overlap in time and
  times never go backwards inside one: the usual case, checked in one O(n)
  pass. Otherwise (several producer sessions writing one series, a clock that
  stepped back) one lexsort restores it.

:func:`read_run_points` is the whole of a run as stored, for ``get_metrics``
and for tests that compare what producers sent with what PostgreSQL holds.
"""

# ruff: noqa: S608 - the f-strings only join constant SQL fragments; every value is a $n parameter.

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import asyncpg
import numpy as np
import numpy.typing as npt

from runstream.chunks import DECODE_COLUMNS, PointColumns, decode_compact, decode_row, is_compact
from runstream.pg import Conn

__all__ = ["LazyPointColumns", "SeriesRange", "first_points", "read_after", "read_run_points", "read_series"]


@dataclass(frozen=True, slots=True)
class SeriesRange:
    """Which points: steps and times are inclusive bounds, ``None`` for open."""

    start_step: int | None = None
    end_step: int | None = None
    start_time: float | None = None
    end_time: float | None = None


class LazyPointColumns:
    """:class:`runstream.chunks.PointColumns` as the query service holds them; ``values`` is
    float64, or an object array of ``str`` for a text series.

    Lazy in ``steps`` and ``ordinals``: those of rows decoded in bulk are progressions,
    computed only where asked: a downsampled answer needs them for its
    2,000 points, not for the million it chose them from.
    """

    __slots__ = ("_ordinals", "_steps", "times", "values")
    _steps: npt.NDArray[np.int64] | _Progressions
    _ordinals: npt.NDArray[np.int64] | _Progressions
    times: npt.NDArray[np.float64]
    values: npt.NDArray[Any]

    def __init__(
        self,
        steps: npt.NDArray[np.int64] | _Progressions,
        times: npt.NDArray[np.float64],
        ordinals: npt.NDArray[np.int64] | _Progressions,
        values: npt.NDArray[Any],
    ) -> None:
        self._steps, self.times, self._ordinals, self.values = steps, times, ordinals, values

    @property
    def steps(self) -> npt.NDArray[np.int64]:
        if isinstance(self._steps, _Progressions):
            self._steps = self._steps.full()
        return self._steps

    @property
    def ordinals(self) -> npt.NDArray[np.int64]:
        if isinstance(self._ordinals, _Progressions):
            self._ordinals = self._ordinals.full()
        return self._ordinals

    def __len__(self) -> int:
        return len(self.times)

    def shared(self) -> LazyPointColumns:
        """Another view of the same columns: computing its steps or ordinals leaves this one as it is."""
        return LazyPointColumns(self._steps, self.times, self._ordinals, self.values)

    def take(self, index: Any) -> LazyPointColumns:
        """The points at ``index`` (a slice, a boolean mask or positions)."""
        return LazyPointColumns(
            self._pick(self._steps, index), self.times[index], self._pick(self._ordinals, index), self.values[index]
        )

    def _pick(self, column: npt.NDArray[np.int64] | _Progressions, index: Any) -> npt.NDArray[np.int64]:
        if isinstance(column, _Progressions):
            if isinstance(index, np.ndarray) and index.dtype.kind in "iu" and len(index) * 8 < len(self):
                return column.at(index)
            column = column.full()
        picked: npt.NDArray[np.int64] = column[index]
        return picked

    def in_order(self) -> LazyPointColumns:
        """The same points in (time, ordinal) order."""
        dt = np.diff(self.times)
        ties = np.flatnonzero(dt == 0)
        if bool((dt >= 0).all()) and bool(
            (self._pick(self._ordinals, ties + 1) >= self._pick(self._ordinals, ties)).all()
        ):
            return self
        return self.take(np.lexsort((self.ordinals, self.times)))

    def within(self, rng: SeriesRange) -> LazyPointColumns:
        if rng == _OPEN:
            return self
        keep = np.ones(len(self), dtype=bool)
        bounds: list[tuple[npt.NDArray[Any], float | None, float | None]] = [(self.times, rng.start_time, rng.end_time)]
        # Steps still held as progressions that all lie in range are not computed at all.
        if not (isinstance(self._steps, _Progressions) and self._steps.within(rng.start_step, rng.end_step)):
            bounds.append((self.steps, rng.start_step, rng.end_step))
        for column, low, high in bounds:
            if low is not None:
                keep &= column >= low
            if high is not None:
                keep &= column <= high
        return self._keep(keep)

    def after(self, cursor: tuple[float, int] | None) -> LazyPointColumns:
        """The points past ``cursor``'s (time, ordinal)."""
        if cursor is None:
            return self
        time, ordinal = cursor
        keep = self.times > time
        tied = np.flatnonzero(self.times == time)
        keep[tied[self._pick(self._ordinals, tied) > ordinal]] = True
        return self._keep(keep)

    def _keep(self, mask: npt.NDArray[np.bool_]) -> LazyPointColumns:
        # Most bounds keep every point read (the chunks were chosen by them): no copy then.
        return self if bool(mask.all()) else self.take(mask)


class _Progressions:
    """Row k's ``start[k] + stride[k] * j`` for j < n[k], rows end to end (int64 wraps alike everywhere)."""

    __slots__ = ("first", "n", "start", "stride")

    def __init__(self, n: npt.NDArray[np.int64], start: npt.NDArray[np.int64], stride: npt.NDArray[np.int64]) -> None:
        self.n, self.start, self.stride = n, start, stride
        self.first = np.cumsum(n) - n

    def full(self) -> npt.NDArray[np.int64]:
        """Every value, as one running sum of the strides."""
        increments = np.repeat(self.stride, self.n)
        # A row's first increment jumps from the previous row's last value to its start.
        last = self.start + self.stride * (self.n - 1)
        increments[self.first] = self.start - np.concatenate(([0], last[:-1]))
        return np.cumsum(increments)

    def within(self, low: int | None, high: int | None) -> bool:
        """Whether every value lies within ``low``..``high`` (``None``: open)."""
        last = self.start + self.stride * (self.n - 1)
        return (low is None or int(np.minimum(self.start, last).min()) >= low) and (
            high is None or int(np.maximum(self.start, last).max()) <= high
        )

    def at(self, positions: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        """The values at ``positions`` only."""
        row = np.searchsorted(self.first, positions, side="right") - 1
        values: npt.NDArray[np.int64] = self.start[row] + self.stride[row] * (positions - self.first[row])
        return values


_OPEN: Final = SeriesRange()

_CHUNK_SQL: Final = ", ".join(f"c.{column}" for column in DECODE_COLUMNS)

#: Seconds of slack when comparing chunk bounds with decoded times (see the module docstring).
_TIME_SLACK: Final = 1e-6

#: Chunks of series $1 that may hold points of the range $2..$5 (step and time bounds). The stored_day
#: bounds touch nothing but let PostgreSQL skip the day partitions the series has no chunk in.
_RANGE_SQL: Final = f"""
    c.series_id = $1
    AND c.stored_day BETWEEN (SELECT s.first_day FROM series s WHERE s.id = $1)
                         AND (SELECT s.last_day FROM series s WHERE s.id = $1)
    AND ($2::bigint IS NULL OR c.step_max >= $2) AND ($3::bigint IS NULL OR c.step_min <= $3)
    AND ($4::float8 IS NULL OR c.time_end >= $4 - {_TIME_SLACK})
    AND ($5::float8 IS NULL OR c.time_start <= $5 + {_TIME_SLACK})
"""

#: Chunks :func:`first_points` reads in its first round trip; each further one reads four times more.
_FIRST_BATCH: Final = 16


def decode_rows(records: Iterable[asyncpg.Record]) -> LazyPointColumns:
    """The points of ``point_chunks`` rows (holding ``DECODE_COLUMNS``), concatenated in the rows' order."""
    rows = list(records)
    if not rows:
        return _empty()
    compact = np.array([is_compact(r) for r in rows])
    if compact.all():
        return _decode_compact(rows)
    chunks = [decode_row(r) for r, c in zip(rows, compact, strict=True) if not c]
    if isinstance(chunks[0].values, list):  # a text series
        texts = list(itertools.chain.from_iterable(c.values for c in chunks))
        return LazyPointColumns(*_join(chunks), np.array(texts, dtype=object))
    others = LazyPointColumns(*_join(chunks), np.concatenate([c.values for c in chunks]))
    if not compact.any():
        return others
    # Both kinds: each fills its own rows' places, in row order.
    bulk = _decode_compact([r for r, c in zip(rows, compact, strict=True) if c])
    places = np.repeat(compact, [r["n"] for r in rows])
    columns = []
    for field in ("steps", "times", "ordinals", "values"):
        column = np.empty(len(places), getattr(bulk, field).dtype)
        column[places], column[~places] = getattr(bulk, field), getattr(others, field)
        columns.append(column)
    return LazyPointColumns(*columns)


def _join(chunks: list[PointColumns]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    return (
        np.concatenate([c.steps for c in chunks]),
        np.concatenate([c.times for c in chunks]),
        np.concatenate([c.ordinals for c in chunks]),
    )


def _decode_compact(rows: list[asyncpg.Record]) -> LazyPointColumns:
    compact = decode_compact(rows)
    return LazyPointColumns(
        _Progressions(compact.n, compact.step_start, compact.step_stride),
        compact.times,
        _Progressions(compact.n, compact.ord_start, np.ones_like(compact.n)),
        compact.values,
    )


def _empty() -> LazyPointColumns:
    return LazyPointColumns(
        np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.int64), np.empty(0, np.float64)
    )


def _concat(parts: Sequence[LazyPointColumns]) -> LazyPointColumns:
    if len(parts) == 1:
        return parts[0]
    return LazyPointColumns(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in ("steps", "times", "ordinals", "values"))
    )


def _range_args(series_id: int, rng: SeriesRange) -> tuple[Any, ...]:
    return series_id, rng.start_step, rng.end_step, rng.start_time, rng.end_time


async def read_series(
    conn: asyncpg.Connection | asyncpg.Pool, series_id: int, rng: SeriesRange = _OPEN
) -> LazyPointColumns:
    """Every point of the series in ``rng``, in (time, ordinal) order."""
    records = await conn.fetch(
        f"SELECT {_CHUNK_SQL} FROM point_chunks c WHERE {_RANGE_SQL} ORDER BY c.time_start",
        *_range_args(series_id, rng),
    )
    return decode_rows(records).within(rng).in_order()


async def first_points(
    conn: Conn,
    series_id: int,
    rng: SeriesRange,
    *,
    limit: int,
    after: tuple[float, int] | None = None,
    newest: bool = False,
) -> LazyPointColumns:
    """The first ``limit`` points of ``rng`` past ``after`` in (time, ordinal) order; the last ``limit`` if ``newest``.

    Chunks are read through a cursor, earliest ``time_start`` first (latest
    ``time_end`` first when ``newest``), in growing batches, until no unread
    chunk can hold a point that would displace one already kept: a page of a
    long series decodes only the chunks around it.
    """
    order = "c.time_end DESC" if newest else "c.time_start"
    args = (*_range_args(series_id, rng), None if after is None else after[0])
    kept = _empty()
    batch = _FIRST_BATCH
    # One snapshot for every batch, so a page never mixes two states of the series.
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        cursor = await conn.cursor(
            f"SELECT {_CHUNK_SQL}, c.time_end FROM point_chunks c"
            f" WHERE {_RANGE_SQL} AND ($6::float8 IS NULL OR c.time_end >= $6 - {_TIME_SLACK}) ORDER BY {order}",
            *args,
        )
        while True:
            records = await cursor.fetch(batch)
            kept = _concat([kept, decode_rows(records).within(rng).after(after)]).in_order()
            kept = kept.take(slice(-limit, None) if newest else slice(0, limit))
            if len(records) < batch:
                return kept
            # Unread chunks start at or after the last one read (end at or before it, when newest).
            if len(kept) == limit and (
                records[-1]["time_end"] + _TIME_SLACK < kept.times[0]
                if newest
                else records[-1]["time_start"] - _TIME_SLACK > kept.times[-1]
            ):
                return kept
            batch *= 4


async def read_after(
    conn: asyncpg.Connection | asyncpg.Pool, cursors: dict[int, tuple[float, int]], *, limit: int | None = None
) -> dict[int, LazyPointColumns]:
    """Per series id, the first ``limit`` (default all) points past its (time, ordinal) cursor, in order.

    Series with no such point are left out.
    """
    ids = list(cursors)
    records = await conn.fetch(
        f"""
        SELECT c.series_id, {_CHUNK_SQL}
        FROM unnest($1::bigint[], $2::float8[]) AS k(id, t)
        JOIN series s ON s.id = k.id
        JOIN point_chunks c
            ON c.series_id = s.id AND c.stored_day BETWEEN s.first_day AND s.last_day
            AND c.time_end >= k.t - {_TIME_SLACK}
        ORDER BY c.series_id, c.time_start
        """,
        ids,
        [cursors[i][0] for i in ids],
    )
    out: dict[int, LazyPointColumns] = {}
    for series_id, rows in itertools.groupby(records, key=lambda r: r["series_id"]):
        points = decode_rows(rows).after(cursors[series_id]).in_order().take(slice(0, limit))
        if len(points):
            out[series_id] = points
    return out


async def read_run_points(
    conn: Conn | asyncpg.Pool, run_id: uuid.UUID | str, *, name: str | None = None
) -> dict[str, LazyPointColumns]:
    """Every stored scalar point of the run (or of its metric ``name``), by metric, in (time, ordinal) order.

    Metrics with no points stored are left out.
    """
    records = await conn.fetch(
        f"""
        SELECT s.name, {_CHUNK_SQL}
        FROM series s
        JOIN point_chunks c ON c.series_id = s.id AND c.stored_day BETWEEN s.first_day AND s.last_day
        WHERE s.run_id = $1 AND s.kind = 'scalar' AND ($2::text IS NULL OR s.name = $2)
        ORDER BY s.name, c.time_start
        """,
        run_id,
        name,
    )
    return {
        metric: decode_rows(rows).in_order() for metric, rows in itertools.groupby(records, key=lambda r: r["name"])
    }
