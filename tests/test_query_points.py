"""Decoding point chunks in bulk gives exactly what ``runstream.chunks.decode_row`` gives row by row."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
from hypothesis import event, given, settings
from hypothesis import strategies as st

from query._points import SeriesRange, decode_rows
from runstream.chunks import CHUNK_COLUMNS, PACKED, SMALL_CHUNK_POINTS, decode_row, encode_chunk

T0 = 1_764_000_000.0


@st.composite
def chunk(draw: st.DrawFn, *, text: bool, compact: bool) -> dict[str, Any]:
    """One encoded chunk; unless ``compact``, maybe with explicit steps, ordinals or absolute times.

    Lists of chunks drawn with ``compact=False`` mix both kinds, as a series does after compaction.
    Some numeric chunks are large enough to be packed (their values drawn from a seed, NaN among them).
    """
    large = not text and draw(st.integers(0, 3)) == 0
    n = SMALL_CHUNK_POINTS + draw(st.integers(0, 3)) if large else draw(st.integers(1, 40))
    step0, stride = draw(st.integers(-(2**40), 2**40)), draw(st.integers(0, 5))
    steps = [step0 + stride * i for i in range(n)]
    if not compact and draw(st.booleans()) and n > 2:
        steps[-1] = draw(st.integers(-(2**40), 2**40))
    start = T0 + draw(st.floats(0, 1e5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    gaps = (
        rng.uniform(0, 10, n - 1).tolist()
        if large
        else draw(st.lists(st.floats(0, 10), min_size=n - 1, max_size=n - 1))
    )
    times = list(np.cumsum([start, *gaps]))
    if not compact and draw(st.booleans()) and n > 1:
        times.reverse()  # backwards: absolute float64 times
    ordinal0 = draw(st.integers(0, 2**40))
    ordinals = [ordinal0 + i + (5 if not compact and draw(st.booleans()) and i == n - 1 else 0) for i in range(n)]
    values: list[Any] = (
        [str(i) for i in range(n)]
        if text
        else np.where(rng.random(n) < 0.01, np.nan, rng.normal(0, 1, n)).tolist()
        if large
        else draw(st.lists(st.floats(allow_nan=True), min_size=n, max_size=n))
    )
    record = encode_chunk(7, steps, times, ordinals, values, is_text=text, pack=large and draw(st.booleans()))
    return dict(zip(CHUNK_COLUMNS, record, strict=True))


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype == object or b.dtype == object:
        return a.tolist() == b.tolist()
    # Bit for bit: NaN payloads and -0.0 included.
    return a.dtype.kind == b.dtype.kind and a.astype(np.float64).tobytes() == b.astype(np.float64).tobytes()


@settings(max_examples=200, deadline=None)
@given(st.booleans(), st.booleans(), st.data())
def test_bulk_decoding_equals_decode_chunk(text: bool, compact: bool, data: st.DataObject) -> None:
    rows = data.draw(st.lists(chunk(text=text, compact=compact), min_size=1, max_size=8))
    expected = [decode_row(r) for r in rows]
    event("packed rows" if any(r["codec"] == PACKED for r in rows) else "raw rows only")
    got = decode_rows(rows)  # type: ignore[arg-type]
    # A few points picked before the whole columns are asked for: computed from the rows' progressions.
    picked = np.array(sorted(data.draw(st.sets(st.integers(0, len(got.times) - 1), max_size=3))), dtype=np.intp)
    few = got.take(picked)
    all_steps = np.concatenate([c.steps for c in expected])
    low, high = sorted(data.draw(st.lists(st.sampled_from(all_steps.tolist()), min_size=2, max_size=2)))
    inside = decode_rows(rows).within(SeriesRange(start_step=low, end_step=high))  # type: ignore[arg-type]
    assert inside.steps.tolist() == [s for s in all_steps.tolist() if low <= s <= high]
    assert _same(few.steps, np.concatenate([c.steps for c in expected])[picked])
    assert _same(few.ordinals, np.concatenate([c.ordinals for c in expected])[picked])
    assert _same(got.steps, np.concatenate([c.steps for c in expected]))
    assert _same(got.times, np.concatenate([c.times for c in expected]))
    assert _same(got.ordinals, np.concatenate([c.ordinals for c in expected]))
    if isinstance(expected[0].values, list):  # a text series
        assert got.values.tolist() == [t for c in expected for t in c.values]
    else:
        want = np.concatenate([c.values for c in expected])
        assert [struct.pack("<d", v) for v in got.values.tolist()] == [struct.pack("<d", v) for v in want.tolist()]
