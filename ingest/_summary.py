"""The per-series summary of one flush's points (see migration 0002).

numpy does the passes over the columns, so no Python code runs per point.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["summarize"]


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
