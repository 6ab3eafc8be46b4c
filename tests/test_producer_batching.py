"""Property tests for the buffer and the batching (pure logic, no services).

Whatever is logged - any kinds, explicit or automatic steps, events in
between - the records decode to exactly the points and events logged, in
order, and every record fits its budget.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producer import _batching
from producer._buffer import Buffer, SealedPoints
from runstream.events import MAX_RECORD_BYTES, decode_batch

RUN = "6f1c7f5e-8d52-4b0c-9a43-2a9d5f0a1c11"
SESSION = "0b9f3a44-1d5e-4f7e-8c4b-55a3d2e1f0aa"

floats = st.floats(allow_nan=True, allow_infinity=True)
scalars = st.one_of(
    floats.map(lambda v: ("float", v)),
    st.integers(-(2**63), 2**63 - 1).map(lambda v: ("int", v)),
    st.booleans().map(lambda v: ("bool", v)),
    st.text(max_size=300).map(lambda v: ("str", v)),
)
actions = st.lists(
    st.one_of(
        st.tuples(st.just("log"), st.sampled_from(["a", "b", "c"]), scalars, st.none() | st.integers(-5, 10**12)),
        st.tuples(st.just("fast"), st.sampled_from(["a", "b"]), floats, st.none()),
        # log_metrics: a dict of floats (rows while the names and their order repeat), else the long way.
        st.tuples(
            st.just("dict"),
            st.sampled_from([("a", "b"), ("b", "a"), ("a", "b", "c"), ("c",)]),
            st.lists(floats, min_size=3, max_size=3),
            st.none() | st.integers(-5, 10**12),
        ),
        st.tuples(st.just("event"), st.sampled_from(["t1", "t2"]), st.none(), st.none()),
        st.tuples(st.just("drain"), st.none(), st.none(), st.none()),
    ),
    max_size=200,
)


def _key(value: Any) -> Any:
    return ("nan",) if isinstance(value, float) and math.isnan(value) else (type(value).__name__, value)


@settings(max_examples=200, deadline=None)
@given(actions, st.sampled_from([2_000, 20_000, _batching.BUDGET]))
def test_records_carry_exactly_what_was_logged(plan: list[tuple[Any, ...]], budget: int) -> None:
    buffer = Buffer(flush_points=10**9, max_points=10**9, wait_seconds=1, wake=lambda: None)
    expected: dict[str, list[tuple[int, int, Any]]] = {}
    expected_events: list[str] = []
    records: list[bytes] = []
    seq = 0

    def drain() -> None:
        nonlocal seq
        items, _ = buffer.drain()
        for group in _batching.group(items, budget):
            seq += 1
            records.append(_batching.encode(RUN, SESSION, seq, group))

    for action, name, payload, step in plan:
        if action == "log":
            kind, value = payload
            n = len(expected.setdefault(name, []))
            buffer.append(name, kind, value, step)
            expected[name].append((n, n if step is None else step, value))
        elif action == "fast":
            columns = buffer.fast.get(name)
            n = len(expected.setdefault(name, []))
            if columns is None:
                buffer.append(name, "float", payload, None)
            else:
                buffer.append_float(columns, payload)
            expected[name].append((n, n, payload))
        elif action == "dict":
            metrics = dict(zip(name, payload, strict=False))
            if not buffer.append_floats(metrics, step):
                buffer.append_many([(k, "float", v) for k, v in metrics.items()], step)
            for k, v in metrics.items():
                n = len(expected.setdefault(k, []))
                expected[k].append((n, n if step is None else step, v))
        elif action == "event":
            buffer.add_event({"type": "tags", "time": 1.0, "tags": {name: None}})
            expected_events.append(name)
        else:
            drain()
    drain()

    got: dict[str, list[tuple[int, int, Any]]] = {}
    events: list[str] = []
    for number, record in enumerate(records, start=1):
        assert len(record) <= min(budget + 4096, MAX_RECORD_BYTES)
        batch = decode_batch(record)
        assert (batch.run_id, batch.session_id, batch.seq) == (RUN, SESSION, number)
        for event in batch.events:
            if event["type"] == "tags":
                events.append(next(iter(event["tags"])))
                continue
            # Decoded columns are numpy arrays (str values a list): back to Python scalars.
            values = event["values"] if isinstance(event["values"], list) else event["values"].tolist()
            got.setdefault(event["name"], []).extend(
                zip(event["ordinals"].tolist(), event["steps"].tolist(), values, strict=True)
            )
    assert events == expected_events
    assert set(got) == {k for k, v in expected.items() if v}
    for name, points in expected.items():
        mine = sorted(got.get(name, []), key=lambda p: p[0])
        assert got.get(name, []) == mine  # each name's points reach the records in order
        assert [(o, s) for o, s, _ in mine] == [(o, s) for o, s, _ in points]
        # Exact values: floats bit for bit, other kinds by type and value.
        assert [_bits(v) for _, _, v in mine] == [_bits(v) for _, _, v in points]


def _bits(value: Any) -> Any:
    if isinstance(value, float):
        return struct.pack("<d", value)
    return _key(value)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 30_000), st.integers(5_000, 200_000))
def test_a_long_chunk_splits_in_order_under_the_budget(n: int, budget: int) -> None:
    buffer = Buffer(flush_points=10**9, max_points=10**9, wait_seconds=1, wake=lambda: None)
    for i in range(n):
        buffer.append("x", "float", i / 7, None)
    items, _ = buffer.drain()
    values: list[float] = []
    for seq, group in enumerate(_batching.group(items, budget), start=1):
        record = _batching.encode(RUN, SESSION, seq, group)
        assert len(record) <= budget + 4096 or len(decode_batch(record).events[0]["steps"]) == 1
        values.extend(v for e in decode_batch(record).events for v in e["values"])
    assert values == [i / 7 for i in range(n)]


PATTERNS = {
    "disjoint dicts": [("dict", {"loss": 1.0, "acc": 2.0}), ("dict", {"lr": 3.0})],
    "overlapping dicts": [("dict", {"loss": 1.0, "acc": 2.0}), ("dict", {"loss": 1.5, "lr": 3.0})],
    "a dict and log() of one of its names": [("dict", {"loss": 1.0, "acc": 2.0}), ("log", {"acc": 2.5})],
}


@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_dicts_logged_in_turn_stay_in_few_pieces(pattern: str) -> None:
    """Rows of log_metrics are cut when another call logs one of their names; names cut after a few rows
    go to their columns from then on. A pattern repeated every step therefore keeps a few pieces per name
    per drain, not an event per name per step on the wire, and every point stays in order."""
    buffer = Buffer(flush_points=10**9, max_points=10**9, wait_seconds=1, wake=lambda: None)
    for name in ("loss", "acc", "lr"):
        buffer.append(name, "float", 0.0, None)  # pending as floats, as after a first validated call
    expected: dict[str, list[tuple[int, float]]] = {"loss": [(0, 0.0)], "acc": [(0, 0.0)], "lr": [(0, 0.0)]}
    for step in range(1, 1001):
        for how, metrics in PATTERNS[pattern]:
            metrics = {name: value + step for name, value in metrics.items()}
            if how == "dict":
                assert buffer.append_floats(metrics, None)
            else:
                columns = buffer.fast.get("acc")  # as run.log does: its fast path, else the long way
                if columns is not None:
                    buffer.append_float(columns, metrics["acc"])
                else:
                    buffer.append("acc", "float", metrics["acc"], None)
            for name, value in metrics.items():
                expected[name].append((len(expected[name]), value))
    items, _ = buffer.drain()
    pieces: dict[str, int] = {}
    got: dict[str, list[tuple[int, float]]] = {}
    for item in items:
        assert isinstance(item, SealedPoints)
        pieces[item.name] = pieces.get(item.name, 0) + 1
        got.setdefault(item.name, []).extend(zip(item.ordinals, (float(v) for v in item.values), strict=True))
    assert got == expected
    assert max(pieces.values()) <= 4, pieces
