"""Property tests for the point-chunk codec: what goes in comes out, bit for bit."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runstream.chunks import CHUNK_COLUMNS, DECODE_COLUMNS, PointColumns, decode_chunk, encode_chunk, encode_chunks
from tests.fuzzing import examples, fuzz_settings

BASE_TIME = 1_790_000_000.0


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


def _decode(record: tuple[object, ...]):  # type: ignore[no-untyped-def]
    row = dict(zip(CHUNK_COLUMNS, record, strict=True))
    return decode_chunk(**{k: row[k] for k in DECODE_COLUMNS})


points = st.integers(min_value=1, max_value=300).flatmap(
    lambda n: st.tuples(
        st.one_of(
            st.builds(lambda a, d: [a + d * i for i in range(n)], st.integers(-(10**6), 10**6), st.integers(-5, 5)),
            st.lists(st.integers(-(2**62), 2**62), min_size=n, max_size=n),
        ),
        st.one_of(
            st.lists(st.integers(0, 5000), min_size=n, max_size=n).map(
                lambda ds: [BASE_TIME + sum(ds[: i + 1]) / 1e6 for i in range(n)]
            ),
            st.lists(st.floats(0, 4e9, allow_nan=False), min_size=n, max_size=n),
        ),
        st.one_of(
            st.builds(lambda o: list(range(o, o + n)), st.integers(0, 10**9)),
            st.lists(st.integers(0, 2**40), min_size=n, max_size=n),
        ),
        st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=n, max_size=n),
    )
)


@pytest.mark.fuzz
@fuzz_settings(examples(300))
@given(points)
def test_float_chunks_round_trip_exactly(data: tuple[list[int], list[float], list[int], list[float]]) -> None:
    steps, times, ordinals, values = data
    chunk = _decode(encode_chunk(7, steps, times, ordinals, values))
    assert chunk.steps.tolist() == steps
    assert chunk.ordinals.tolist() == ordinals
    assert chunk.values is not None
    assert [_bits(v) for v in chunk.values.tolist()] == [_bits(v) for v in values]
    # Times keep microsecond precision (or are exact when stored as floats).
    assert all(abs(a - b) <= 1e-6 for a, b in zip(chunk.times.tolist(), times, strict=True))


@given(st.lists(st.text(), min_size=1, max_size=50))
def test_text_chunks_round_trip(texts: list[str]) -> None:
    n = len(texts)
    record = encode_chunk(1, list(range(n)), [BASE_TIME] * n, list(range(n)), texts, is_text=True)
    chunk = _decode(record)
    assert chunk.values == texts


def test_summary_columns_ignore_non_finite_values() -> None:
    record = dict(
        zip(
            CHUNK_COLUMNS,
            encode_chunk(1, [0, 1, 2, 3], [BASE_TIME] * 4, [0, 1, 2, 3], [math.nan, 2.0, -math.inf, 1.0]),
            strict=True,
        )
    )
    assert (record["value_min"], record["value_max"], record["value_last"]) == (1.0, 2.0, 1.0)
    assert record["steps"] is None and record["step_stride"] == 1
    assert len(record["times"]) == 16  # four uint32 deltas


@pytest.mark.parametrize("columns", [([], [], [], []), ([1], [BASE_TIME], [0, 1], [1.0])])
def test_empty_or_ragged_chunks_are_refused(columns: tuple[list[float], ...]) -> None:
    with pytest.raises(ValueError, match="equal length"):
        encode_chunk(1, *columns)


@pytest.mark.fuzz
@fuzz_settings(examples(100))
@given(st.lists(points, min_size=1, max_size=12))
def test_encoding_many_series_at_once_equals_one_by_one(
    series: list[tuple[list[int], list[float], list[int], list[float]]],
) -> None:
    """encode_chunks (a flush's numeric series together) gives encode_chunk's records, bit for bit."""
    columns = [PointColumns(*(np.asarray(c) for c in s)) for s in series]
    ids = list(range(len(columns)))
    together = encode_chunks(ids, columns)
    alone = [encode_chunk(i, *c) for i, c in zip(ids, columns, strict=True)]
    assert repr(together) == repr(alone)  # NaN equal to NaN; blobs compared byte for byte
