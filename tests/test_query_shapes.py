"""Properties of the get_metrics shape builder (pure logic, no services)."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from query._metrics import SeriesData, metric_value, metrics_dict

_values = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.none(),
)
_columns = st.sampled_from(["a", "b", "c", "d"])
_rows = st.lists(st.dictionaries(_columns, _values, max_size=4), min_size=1, max_size=12)


@given(_rows)
def test_rows_become_columns(rows: list[dict[str, Any]]) -> None:
    shape = metric_value(SeriesData("r", "row", None, entries=rows))
    seen = list(dict.fromkeys(k for row in rows for k in row))
    assert list(shape) == seen
    if len(rows) == 1:
        assert shape == rows[0]
    else:
        for column in seen:
            assert shape[column] == [row.get(column) for row in rows]


@given(st.lists(st.dictionaries(_columns, st.lists(_values, max_size=5), max_size=3), min_size=1, max_size=5))
def test_tables_concatenate_rows(tables: list[dict[str, list[Any]]]) -> None:
    shape = metric_value(SeriesData("t", "table", None, entries=tables))
    total = sum(max((len(v) for v in t.values()), default=0) for t in tables)
    if total == 1:
        assert all(not isinstance(v, list) for v in shape.values())
        return
    assert all(len(v) == total for v in shape.values())
    # Each table's cells land in its own block of rows, short columns padded with None.
    offset = 0
    for table in tables:
        height = max((len(v) for v in table.values()), default=0)
        for column, cells in table.items():
            assert shape[column][offset : offset + height] == cells + [None] * (height - len(cells))
        offset += height


@given(st.lists(st.floats(), min_size=1, max_size=20))
def test_scalar_floats(values: list[float]) -> None:
    shape = metric_value(SeriesData("x", "scalar", "float", values=values))
    out = shape if len(values) > 1 else [shape]
    for got, want in zip(out, values, strict=True):
        if math.isfinite(want):
            assert got == want
        else:
            label = "NaN" if math.isnan(want) else ("Infinity" if want > 0 else "-Infinity")
            assert got == {"$float": label}


@given(st.lists(st.integers(-(2**53), 2**53), min_size=2, max_size=20))
def test_scalar_ints_stay_ints(values: list[int]) -> None:
    shape = metric_value(SeriesData("n", "scalar", "int", values=[float(v) for v in values]))
    assert shape == values and all(type(v) is int for v in shape)


def test_empty_series_are_left_out() -> None:
    assert metrics_dict([SeriesData("x", "scalar", "float"), SeriesData("l", "list", None)]) == {}
