"""Property tests for the point-chunk codec: what goes in comes out, bit for bit."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runstream.chunks import (
    CHUNK_COLUMNS,
    DECODE_COLUMNS,
    PACKED,
    RAW,
    SMALL_CHUNK_POINTS,
    PointColumns,
    decode_chunk,
    encode_chunk,
    encode_chunks,
)
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


def _curve(n: int, seed: int, shape: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``n`` points of a training-like series: steps, times rounded as a clock's, ordinals, values."""
    rng = np.random.default_rng(seed)
    steps = np.arange(n, dtype=np.int64) * 2 if seed % 2 else np.sort(rng.integers(-(2**40), 2**40, n))
    ordinals = np.arange(n, dtype=np.int64) + 5 if seed % 3 else rng.integers(0, 2**40, n)
    times = BASE_TIME + np.cumsum(rng.integers(0, 5_000, n)) / 1e6
    decay = np.exp(-np.arange(n) / n)
    values = {
        "float32": (decay + rng.normal(0, 0.01, n)).astype(np.float32).astype(np.float64),
        "float64": decay * rng.uniform(0.9, 1.1, n),
        "constant": np.full(n, 0.125),
        # Any bit pattern: NaN payloads, ±Inf, -0.0 and subnormals among them.
        "bits": rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, n, dtype=np.int64).view(np.float64),
    }[shape]
    return steps, times, ordinals, values


@pytest.mark.fuzz
@fuzz_settings(examples(40))
@given(
    st.integers(SMALL_CHUNK_POINTS, 3 * SMALL_CHUNK_POINTS),
    st.integers(0, 2**32 - 1),
    st.sampled_from(["float32", "float64", "constant", "bits"]),
)
def test_large_chunks_are_packed_and_read_back_as_raw_ones_are(n: int, seed: int, shape: str) -> None:
    """A chunk of SMALL_CHUNK_POINTS or more is packed; it decodes to the points a raw chunk of them decodes to."""
    steps, times, ordinals, values = _curve(n, seed, shape)
    assert encode_chunk(3, steps, times, ordinals, values)[-1] == RAW  # unless asked: a flush's chunks
    record = dict(zip(CHUNK_COLUMNS, encode_chunk(3, steps, times, ordinals, values, pack=True), strict=True))
    assert record["codec"] == PACKED
    chunk = _decode(tuple(record.values()))
    assert chunk.steps.tolist() == steps.tolist()
    assert chunk.ordinals.tolist() == ordinals.tolist()
    assert chunk.values.tobytes() == values.tobytes()  # bit for bit
    # The same points minus one, in a chunk small enough to stay raw, decode to the same times.
    raw = _decode(encode_chunk(3, steps[1:], times[1:], ordinals[1:], values[1:]))
    assert raw.times.tobytes() == chunk.times[1:].tobytes()
    assert (record["time_start"], record["time_end"]) == (chunk.times[0], chunk.times[-1])
    assert _bits(record["value_last"]) == _bits(values[-1])
    assert (record["step_min"], record["step_max"]) == (steps.min(), steps.max())
    # A flush's bulk encoding packs the large series and keeps the small ones raw, as one by one.
    small = PointColumns(steps[:5], times[:5], ordinals[:5], values[:5])
    together = encode_chunks([1, 2], [small, PointColumns(steps, times, ordinals, values)], pack=True)
    alone = [encode_chunk(1, *small, pack=True), encode_chunk(2, steps, times, ordinals, values, pack=True)]
    assert repr(together) == repr(alone)
    assert [r[-1] for r in together] == [RAW, PACKED]


def test_large_text_chunks_and_times_out_of_order_stay_raw() -> None:
    n = SMALL_CHUNK_POINTS
    texts = [str(i) for i in range(n)]
    assert encode_chunk(1, range(n), [BASE_TIME] * n, range(n), texts, is_text=True, pack=True)[-1] == RAW
    backwards = [BASE_TIME - i for i in range(n)]
    record = encode_chunk(1, range(n), backwards, range(n), [0.5] * n, pack=True)
    assert record[-1] == RAW
    assert _decode(record).times.tolist() == backwards


def test_packed_chunks_are_smaller_than_raw_ones_for_a_float32_curve() -> None:
    steps, times, ordinals, values = _curve(10_000, 1, "float32")
    record = dict(zip(CHUNK_COLUMNS, encode_chunk(1, steps, times, ordinals, values, pack=True), strict=True))
    # Raw: 8 B of value and 4 B of time delta per point.
    assert len(record["vals"]) + len(record["times"]) < 6 * 10_000


def test_rows_written_before_codecs_existed_read_as_raw_and_unknown_codecs_are_refused() -> None:
    record = dict(
        zip(CHUNK_COLUMNS, encode_chunk(1, [0, 1], [BASE_TIME, BASE_TIME + 1], [0, 1], [0.5, 1.5]), strict=True)
    )
    old = {k: record[k] for k in DECODE_COLUMNS if k != "codec"}  # a row of migration 0021's schema
    assert decode_chunk(**old).values.tolist() == [0.5, 1.5]
    with pytest.raises(ValueError, match="codec 7"):
        decode_chunk(**old, codec=7)
    # A packed column that does not hold the chunk's n values is refused, not read short.
    packed = dict(
        zip(CHUNK_COLUMNS, encode_chunk(1, *_curve(SMALL_CHUNK_POINTS, 1, "float32"), pack=True), strict=True)
    )
    with pytest.raises(ValueError, match="expected 1001"):
        decode_chunk(**{**{k: packed[k] for k in DECODE_COLUMNS}, "n": SMALL_CHUNK_POINTS + 1})
