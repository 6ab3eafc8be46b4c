"""The per-series summary of one flush's points (see migration 0002).

numpy does the passes over the columns, so no Python code runs per point.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._plan import ScalarColumns

__all__ = ["summarize"]


def summarize(columns: ScalarColumns, is_text: bool) -> tuple[Any, ...]:
    """(n, min_value, max_value, max_step, last_step, last_time, last_ordinal, last_value, last_text).

    "Last" is the point with the greatest (time, ordinal); min and max skip
    NaN and ±Inf and are None when no value is finite.
    """
    times = np.asarray(columns.times, dtype=np.float64)
    ordinals = np.asarray(columns.ordinals, dtype=np.int64)
    last = int(np.lexsort((ordinals, times))[-1])
    value = columns.values[last]
    low = high = None
    if not is_text:
        values = np.asarray(columns.values, dtype=np.float64)
        finite = values[np.isfinite(values)]
        if finite.size:
            low, high = float(finite.min()), float(finite.max())
    return (
        len(columns.steps),
        low,
        high,
        max(columns.steps),
        columns.steps[last],
        float(columns.times[last]),
        columns.ordinals[last],
        None if is_text else float(value),
        value if is_text else None,
    )
