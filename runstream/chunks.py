"""How scalar points are packed into rows of ``point_chunks`` and read back.

A row of PostgreSQL costs ~24 bytes of header before any data, so a
row per point cannot get near our 16 bytes per point; a chunk of points per
row can (see ``docs/storage-layout.md`` for the measurements). Ingest encodes
with :func:`encode_chunk`; the query service decodes with :func:`decode_chunk`.
Both use numpy so that no per-point Python work happens on either side.

Within a chunk:

- ``vals``: little-endian float64 (kinds float, int, bool), exact for NaN and
  ±Inf; ``texts`` holds the values of kind ``str`` instead.
- ``steps``: arithmetic progressions (the usual 0, 1, 2, ...) are stored as
  ``step_start`` + ``step_stride`` alone; anything else as an int64 array.
- ``times``: microsecond deltas as uint32 when every delta fits (the usual
  case: they compress well), else absolute float64 seconds. The length tells
  which: ``4 * n`` or ``8 * n`` bytes. ``time_start`` and ``time_end`` are the
  least and greatest time of the chunk, as decoded.
- ordinals: consecutive within a chunk from one producer session, so only
  ``ord_start`` is stored; a gap makes the chunk carry them as int64 ``ords``.

``codec`` says how ``times`` and ``vals`` are laid out. :data:`RAW` is the
above. :data:`PACKED` holds both compressed by pcodec, bit-exact: ``times``
as the int64 microseconds since ``time_start``, ``vals`` as the float64
values. Training curves have few distinct high bytes and smooth steps, which
pcodec's delta and binning models find: about a third of the raw size
(docs/storage-layout.md). Packing costs 25-50 ns a value, so ingest's flush
writes raw chunks and ingest's compaction packs them in the background
(``pack=True``): a numeric chunk of at least :data:`SMALL_CHUNK_POINTS`
points whose times take the microsecond deltas. Rows written before codecs
existed are :data:`RAW` (the column's default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt
from pcodec import ChunkConfig, standalone

from runstream.pg import Row

__all__ = [
    "CHUNK_COLUMNS",
    "PACKED",
    "RAW",
    "SMALL_CHUNK_POINTS",
    "PointColumns",
    "DECODE_COLUMNS",
    "CompactRows",
    "decode_chunk",
    "decode_compact",
    "decode_row",
    "encode_chunk",
    "encode_chunks",
    "is_compact",
]

#: Column order of the records :func:`encode_chunk` returns (after series_id).
CHUNK_COLUMNS = (
    "series_id",
    "time_start",
    "time_end",
    "n",
    "ord_start",
    "ords",
    "step_start",
    "step_stride",
    "step_min",
    "step_max",
    "steps",
    "times",
    "value_min",
    "value_max",
    "value_last",
    "vals",
    "texts",
    "codec",
)

#: The columns :func:`decode_chunk` reads (select these, then :func:`decode_row`).
DECODE_COLUMNS = (
    "n",
    "time_start",
    "ord_start",
    "ords",
    "step_start",
    "step_stride",
    "steps",
    "times",
    "vals",
    "texts",
    "codec",
)

#: ``codec`` of a chunk whose columns are the plain arrays above.
RAW: Final = 0
#: ``codec`` of a chunk whose ``times`` and ``vals`` are pcodec-compressed.
PACKED: Final = 1
#: Chunks of fewer points are merged by ingest's compaction (and never packed: pcodec's
#: tables cost more than they save on a few points); chunks of this many or more are packed.
SMALL_CHUNK_POINTS: Final = 1_000
#: pcodec's level 4 keeps nearly all of level 8's gain at 3-4x its speed
#: (35-40M values/s against 10M here, docs/storage-layout.md).
_PACKING = ChunkConfig(compression_level=4)

_U32_MAX = np.iinfo(np.uint32).max


class PointColumns(NamedTuple):
    """Points of one series as four columns of equal length, in logging order.

    The one name, from a decoded ``scalars`` event through ingest's flush and
    :func:`encode_chunk` back out of :func:`decode_chunk` to the readers, for
    what travels as these four columns; the producer's pieces of its buffer
    are ``SealedPoints``, a stored row of ``point_chunks`` is a *chunk*.
    """

    steps: Any  # int64
    times: Any  # float64
    ordinals: Any  # int64
    values: Any  # float64, or str for a text series


def _finite_stats(values: npt.NDArray[np.float64]) -> tuple[float | None, float | None]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None, None
    return float(finite.min()), float(finite.max())


def encode_chunk(
    series_id: int,
    steps: Sequence[int] | npt.NDArray[np.int64],
    times: Sequence[float] | npt.NDArray[np.float64],
    ordinals: Sequence[int] | npt.NDArray[np.int64],
    values: Sequence[Any] | npt.NDArray[Any],
    *,
    is_text: bool = False,
    pack: bool = False,
) -> tuple[Any, ...]:
    """One ``point_chunks`` record (in :data:`CHUNK_COLUMNS` order) for points of one series.

    ``pack``: :data:`PACKED` if the chunk can be (numeric, at least
    :data:`SMALL_CHUNK_POINTS` points, microsecond time deltas), else raw.
    """
    n = len(steps)
    if n == 0 or not n == len(times) == len(ordinals) == len(values):
        raise ValueError("a chunk needs at least one point and columns of equal length")
    step_arr = np.asarray(steps, dtype=np.int64)
    time_arr = np.asarray(times, dtype=np.float64)
    ord_arr = np.asarray(ordinals, dtype=np.int64)

    # np.diff, not a scalar subtraction: steps far apart wrap (modulo 2**64, which
    # decoding undoes) instead of raising an overflow warning.
    stride = int(np.diff(step_arr[:2])[0]) if n > 1 else 1
    arithmetic = n == 1 or bool((np.diff(step_arr) == stride).all())
    consecutive = n == 1 or bool((np.diff(ord_arr) == 1).all())

    micros = np.round(time_arr * 1e6)
    deltas = np.diff(micros, prepend=micros[0])
    in_deltas = bool((deltas >= 0).all()) and bool((deltas <= _U32_MAX).all())
    packed = pack and in_deltas and not is_text and n >= SMALL_CHUNK_POINTS
    if in_deltas:
        if packed:
            times_blob = standalone.simple_compress((micros - micros[0]).astype(np.int64), _PACKING)
        else:
            times_blob = deltas.astype("<u4").tobytes()
        # The bounds as decoded (times rounded to the microsecond, never
        # decreasing), so readers compare like with like; the first is the
        # base of the deltas (or of the packed offsets).
        time_start, time_end = float(micros[0] / 1e6), float(micros[-1] / 1e6)
    else:
        times_blob = time_arr.astype("<f8").tobytes()
        time_start, time_end = float(time_arr.min()), float(time_arr.max())

    if is_text:
        value_min = value_max = value_last = None
        values_blob, texts = None, [str(v) for v in values]
    else:
        value_arr = np.asarray(values, dtype=np.float64)
        value_min, value_max = _finite_stats(value_arr)
        value_last = float(value_arr[-1])
        values_blob = standalone.simple_compress(value_arr, _PACKING) if packed else value_arr.astype("<f8").tobytes()
        texts = None

    return (
        series_id,
        time_start,
        time_end,
        n,
        int(ord_arr[0]),
        None if consecutive else ord_arr.astype("<i8").tobytes(),
        int(step_arr[0]),
        stride if arithmetic else 0,
        int(step_arr.min()),
        int(step_arr.max()),
        None if arithmetic else step_arr.astype("<i8").tobytes(),
        times_blob,
        value_min,
        value_max,
        value_last,
        values_blob,
        texts,
        PACKED if packed else RAW,
    )


def encode_chunks(
    series_ids: Sequence[int], columns: Sequence[PointColumns], *, pack: bool = False
) -> list[tuple[Any, ...]]:
    """:func:`encode_chunk` of each numeric series' columns (``series_ids[i]``, ``columns[i]``, each non-empty).

    Equal to ``[encode_chunk(i, *c, pack=pack) for i, c in zip(series_ids, columns)]``, but
    the usual small chunks (step progressions, consecutive ordinals,
    microsecond time deltas that fit, under :data:`SMALL_CHUNK_POINTS`
    points) are encoded in whole-array passes over every series at once: with
    many live series a flush holds thousands of chunks of a point or two,
    where a dozen small numpy calls each would cost more than the rest of the
    flush. The others (packed ones included) go through :func:`encode_chunk`.
    """
    if not columns:
        return []
    counts = np.fromiter((len(c.steps) for c in columns), np.int64, len(columns))
    starts = np.cumsum(counts) - counts
    ends = starts + counts - 1
    steps = np.concatenate([c.steps for c in columns]).astype(np.int64, copy=False)
    times = np.concatenate([c.times for c in columns]).astype(np.float64, copy=False)
    ordinals = np.concatenate([c.ordinals for c in columns]).astype(np.int64, copy=False)
    values = np.concatenate([c.values for c in columns]).astype(np.float64, copy=False)
    first = np.zeros(len(steps), bool)
    first[starts] = True
    # Each point's difference to the one before in its series; a series' first point compares with itself.
    step_diff = np.diff(steps, prepend=steps[:1])
    stride = np.where(counts > 1, step_diff[np.minimum(starts + 1, ends)], 1)
    micros = np.round(times * 1e6)
    deltas = np.where(first, 0.0, np.diff(micros, prepend=micros[:1]))
    usual = (
        np.logical_and.reduceat(first | (step_diff == np.repeat(stride, counts)), starts)
        & np.logical_and.reduceat(first | (np.diff(ordinals, prepend=ordinals[:1]) == 1), starts)
        & np.logical_and.reduceat((deltas >= 0) & (deltas <= _U32_MAX), starts)
    )
    finite = np.isfinite(values)
    low = np.minimum.reduceat(np.where(finite, values, np.inf), starts)
    high = np.maximum.reduceat(np.where(finite, values, -np.inf), starts)
    any_finite = np.logical_or.reduceat(finite, starts)
    time_blobs = np.where(usual[np.repeat(np.arange(len(columns)), counts)], deltas, 0).astype("<u4").tobytes()
    value_blobs = values.astype("<f8").tobytes()
    fields = zip(
        series_ids,
        usual.tolist(),
        counts.tolist(),
        starts.tolist(),
        (micros[starts] / 1e6).tolist(),
        (micros[ends] / 1e6).tolist(),
        ordinals[starts].tolist(),
        steps[starts].tolist(),
        stride.tolist(),
        np.minimum.reduceat(steps, starts).tolist(),
        np.maximum.reduceat(steps, starts).tolist(),
        np.where(any_finite, low, np.nan).tolist(),
        np.where(any_finite, high, np.nan).tolist(),
        any_finite.tolist(),
        values[ends].tolist(),
        columns,
        strict=True,
    )
    return [
        (
            (sid, t0, t1, n, o0, None, s0, stride_, s_min, s_max, None, time_blobs[4 * at : 4 * (at + n)])
            + ((lo, hi) if ok else (None, None))
            + (last, value_blobs[8 * at : 8 * (at + n)], None, RAW)
        )
        if is_usual and not (pack and n >= SMALL_CHUNK_POINTS)
        else encode_chunk(sid, *c, pack=pack)
        for sid, is_usual, n, at, t0, t1, o0, s0, stride_, s_min, s_max, lo, hi, ok, last, c in fields
    ]


def decode_chunk(
    *,
    n: int,
    time_start: float,
    ord_start: int,
    ords: bytes | None,
    step_start: int,
    step_stride: int,
    steps: bytes | None,
    times: bytes,
    vals: bytes | None,
    texts: Sequence[str] | None,
    codec: int = RAW,
) -> PointColumns:
    """Inverse of :func:`encode_chunk`, from a row's columns: ``values`` float64, or a ``list`` of ``str`` (text)."""
    if codec not in (RAW, PACKED):
        raise ValueError(f"chunk codec {codec!r} is not one this version reads")
    if steps is None:
        step_arr = step_start + step_stride * np.arange(n, dtype=np.int64)
    else:
        step_arr = np.frombuffer(steps, dtype="<i8").astype(np.int64)
    if codec == PACKED:
        time_arr = _packed_times(time_start, times, n)
    elif len(times) == 4 * n:
        micros = round(time_start * 1e6) + np.cumsum(np.frombuffer(times, dtype="<u4"), dtype=np.int64)
        time_arr = micros / 1e6
    else:
        time_arr = np.frombuffer(times, dtype="<f8").astype(np.float64)
    if ords is None:
        ord_arr = ord_start + np.arange(n, dtype=np.int64)
    else:
        ord_arr = np.frombuffer(ords, dtype="<i8").astype(np.int64)
    if vals is None:
        values: Any = list(texts or ())
    elif codec == PACKED:
        values = _unpacked(vals, n, np.float64)
    else:
        values = np.frombuffer(vals, dtype="<f8").astype(np.float64)
    return PointColumns(step_arr, time_arr, ord_arr, values)


def _packed_times(time_start: float, blob: bytes, n: int) -> npt.NDArray[np.float64]:
    """A packed chunk's times: its rounded first time plus the microsecond offsets, in seconds."""
    return (round(time_start * 1e6) + _unpacked(blob, n, np.int64)) / 1e6  # type: ignore[no-any-return]


def _unpacked(blob: bytes, n: int, dtype: type[np.generic]) -> Any:
    """A pcodec column of a packed chunk, checked to hold ``n`` values of ``dtype``."""
    array = standalone.simple_decompress(blob)
    if array.dtype != dtype or len(array) != n:
        raise ValueError(f"packed chunk column holds {len(array)} {array.dtype} values, expected {n} {dtype.__name__}")
    return array


def decode_row(row: Row) -> PointColumns:
    """:func:`decode_chunk` of a selected row (or any mapping) holding :data:`DECODE_COLUMNS`."""
    return decode_chunk(**{column: row[column] for column in DECODE_COLUMNS})


@dataclass(frozen=True, slots=True)
class CompactRows:
    """Rows in the usual encoding decoded together: their points end to end.

    Steps and ordinals stay progressions, one per row (row k's step j is
    ``step_start[k] + step_stride[k] * j``, its ordinal ``ord_start[k] + j``),
    for readers that need them for a few points only.
    """

    n: npt.NDArray[np.int64]
    step_start: npt.NDArray[np.int64]
    step_stride: npt.NDArray[np.int64]
    ord_start: npt.NDArray[np.int64]
    times: npt.NDArray[np.float64]
    values: npt.NDArray[np.float64]


def is_compact(row: Row) -> bool:
    """Whether a row is in the usual encoding (step and ordinal progressions, float64 values; raw
    microsecond time deltas or packed), which :func:`decode_compact` reads."""
    if row["steps"] is not None or row["ords"] is not None or row["vals"] is None:
        return False
    return bool(row["codec"] == PACKED or (row["codec"] == RAW and len(row["times"]) == 4 * row["n"]))


def decode_compact(rows: Sequence[Row]) -> CompactRows:
    """:func:`decode_chunk`'s arithmetic over many :func:`is_compact` rows in a few whole-array passes.

    Decoding a long series stored in chunks of ~1,000 points row by row is
    dominated by a dozen small numpy calls per row; this does a handful in
    all for raw rows, and two pcodec calls per packed row.
    """
    n = np.fromiter((r["n"] for r in rows), np.int64, len(rows))
    first = np.cumsum(n) - n
    step_start, step_stride, ord_start = (
        np.array([r[k] for r in rows], np.int64) for k in ("step_start", "step_stride", "ord_start")
    )
    packed = np.fromiter((r["codec"] == PACKED for r in rows), bool, len(rows))
    if not packed.any():
        times, values = _raw_columns(rows)
    else:
        total = int(n.sum())
        times, values = np.empty(total), np.empty(total)
        if not packed.all():
            places = np.repeat(~packed, n)
            times[places], values[places] = _raw_columns([r for r, p in zip(rows, packed, strict=True) if not p])
        for k in np.flatnonzero(packed).tolist():
            row, at, count = rows[k], int(first[k]), int(n[k])
            times[at : at + count] = _packed_times(row["time_start"], row["times"], count)
            values[at : at + count] = _unpacked(row["vals"], count, np.float64)
    return CompactRows(n, step_start, step_stride, ord_start, times, values)


def _raw_columns(rows: Sequence[Row]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Times and values of raw compact rows, end to end, in whole-array passes."""
    n = np.fromiter((r["n"] for r in rows), np.int64, len(rows))
    first = np.cumsum(n) - n
    deltas = np.frombuffer(b"".join(r["times"] for r in rows), "<u4")
    total = np.cumsum(deltas, dtype=np.int64)
    # Each row's micros are its rounded time_start plus the deltas' running sum from its own first point.
    base = np.array([round(r["time_start"] * 1e6) for r in rows], np.int64) - (total[first] - deltas[first])
    times = (np.repeat(base, n) + total) / 1e6
    values = np.frombuffer(b"".join(r["vals"] for r in rows), "<f8").astype(np.float64, copy=False)
    return times, values
