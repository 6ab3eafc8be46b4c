"""The per-series summary of one flush's points (see migration 0002).

numpy does the passes over the columns, so no Python code runs per point;
:func:`summarize_all` does them over every numeric series of a flush at once
(``reduceat`` over the columns end to end), so none runs per series either:
with 100k live series a flush holds thousands of series of a point or two,
and a dozen small numpy calls each cost more than the rest of the flush.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from runstream.chunks import PointColumns

__all__ = ["summarize", "summarize_all"]


def summarize(
    steps: Sequence[int] | np.ndarray[Any, Any],
    times: Sequence[float] | np.ndarray[Any, Any],
    ordinals: Sequence[int] | np.ndarray[Any, Any],
    values: Sequence[Any] | np.ndarray[Any, Any],
    *,
    is_text: bool,
) -> tuple[Any, ...]:
    """(n, min_value, max_value, max_step, last_step, last_time, last_ordinal, last_value, last_text).

    "Last" is the point with the greatest (time, ordinal); min and max skip
    NaN and ±Inf and are None when no value is finite. Columns may be lists or
    numpy arrays (arrays are not copied).
    """
    step_arr = np.asarray(steps, dtype=np.int64)
    time_arr = np.asarray(times, dtype=np.float64)
    last = int(np.lexsort((np.asarray(ordinals, dtype=np.int64), time_arr))[-1])
    low = high = None
    if is_text:
        value = None
        text = str(values[last])
    else:
        value_arr = np.asarray(values, dtype=np.float64)
        finite = value_arr[np.isfinite(value_arr)]
        if finite.size:
            low, high = float(finite.min()), float(finite.max())
        value, text = float(value_arr[last]), None
    return (
        len(step_arr),
        low,
        high,
        int(step_arr.max()),
        int(step_arr[last]),
        float(time_arr[last]),
        int(ordinals[last]),
        value,
        text,
    )


def summarize_all(columns: Sequence[PointColumns]) -> list[tuple[Any, ...]]:
    """:func:`summarize` of each numeric series' columns (each non-empty), then its least time, in whole-array passes.

    Equal to ``(*summarize(*c, is_text=False), float(min(c.times)))`` for each ``c``, ties included.
    """
    if not columns:
        return []
    counts = np.fromiter((len(c.steps) for c in columns), np.int64, len(columns))
    starts = np.cumsum(counts) - counts
    steps = np.concatenate([c.steps for c in columns]).astype(np.int64, copy=False)
    times = np.concatenate([c.times for c in columns]).astype(np.float64, copy=False)
    ordinals = np.concatenate([c.ordinals for c in columns]).astype(np.int64, copy=False)
    values = np.concatenate([c.values for c in columns]).astype(np.float64, copy=False)
    ends = starts + counts - 1
    last = ends if _each_in_order(times, ordinals, starts) else _lasts(times, ordinals, counts, ends)
    finite = np.isfinite(values)
    low = np.minimum.reduceat(np.where(finite, values, np.inf), starts)
    high = np.maximum.reduceat(np.where(finite, values, -np.inf), starts)
    any_finite = np.logical_or.reduceat(finite, starts)
    rows = zip(
        counts.tolist(),
        low.tolist(),
        high.tolist(),
        any_finite.tolist(),
        np.maximum.reduceat(steps, starts).tolist(),
        steps[last].tolist(),
        times[last].tolist(),
        ordinals[last].tolist(),
        values[last].tolist(),
        np.minimum.reduceat(times, starts).tolist(),
        strict=True,
    )
    return [
        (n, lo if ok else None, hi if ok else None, max_step, step, time, ordinal, value, None, first)
        for n, lo, hi, ok, max_step, step, time, ordinal, value, first in rows
    ]


def _each_in_order(times: npt.NDArray[np.float64], ordinals: npt.NDArray[np.int64], starts: npt.NDArray[Any]) -> bool:
    """Whether each series' points (end to end from ``starts``) are in (time, ordinal) order: the usual case, as
    a producer session appends them, checked in a few O(n) passes instead of a sort."""
    dt = np.diff(times)
    ahead = (dt > 0) | ((dt == 0) & (np.diff(ordinals) >= 0))
    ahead[starts[1:] - 1] = True  # a series' first point need not follow the previous series' last
    return bool(ahead.all())


def _lasts(
    times: npt.NDArray[np.float64], ordinals: npt.NDArray[np.int64], counts: npt.NDArray[np.int64], ends: Any
) -> npt.NDArray[np.int64]:
    """Each series' last point in (time, ordinal) order, by one sort of them all."""
    group = np.repeat(np.arange(len(counts)), counts)
    # Sorted by series, then (time, ordinal), stably: each series' last is the end of its run.
    found: npt.NDArray[np.int64] = np.lexsort((ordinals, times, group))[ends]
    return found
