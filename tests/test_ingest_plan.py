"""Pure logic of ingest (no services): decoding, status rules, the flush planner, summaries."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest._decoder import DeadLetter, Decoded, Source, decode_record
from ingest._plan import build_plan
from ingest._status import accepts
from ingest._summary import summarize
from runstream.events import STATUSES, TERMINAL_STATUSES
from tests.fuzzing import examples, fuzz_settings
from tests.test_ingest_support import T0, new_id, raw, scalars, started

pytestmark = pytest.mark.fuzz

RUN = new_id()


def _source(value: bytes | None, offset: int = 0) -> Source:
    return Source("t", 0, offset, None, value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


@given(st.binary(max_size=300))
def test_any_bytes_decode_or_dead_letter(data: bytes) -> None:
    assert isinstance(decode_record(_source(data)), Decoded | DeadLetter)


@given(
    st.fixed_dictionaries(
        {"v": st.just(1), "run": st.just(RUN), "session": st.just(RUN), "seq": st.just(1)},
        optional={
            "events": st.lists(
                st.dictionaries(
                    st.sampled_from(
                        [
                            "type",
                            "time",
                            "name",
                            "kind",
                            "steps",
                            "times",
                            "ordinals",
                            "values",
                            "f64",
                            "tags",
                            "properties",
                            "status",
                            "error",
                            "experiment",
                            "columns",
                            "file",
                            "parent",
                            "display_name",
                        ]
                    ),
                    json_values
                    | st.sampled_from(
                        [
                            "scalars",
                            "status",
                            "tags",
                            "list",
                            "row",
                            "table",
                            "image",
                            "heartbeat",
                            "run_started",
                            "properties",
                            "float",
                            "int",
                            "str",
                            "Running",
                        ]
                    ),
                ),
                max_size=3,
            )
        },
    )
)
def test_any_shaped_batch_decodes_or_dead_letters_with_a_reason(doc: dict[str, Any]) -> None:
    result = decode_record(_source(orjson.dumps(doc)))
    if isinstance(result, DeadLetter):
        assert result.reason and result.message
    else:
        # What passes is safe to write: times are finite epoch seconds.
        for event in result.batch.events:
            if event["type"] != "scalars":
                assert math.isfinite(event["time"])


@given(st.lists(st.sampled_from(STATUSES), max_size=12))
def test_status_never_moves_backwards(sequence: list[str]) -> None:
    current: str | None = None
    applied: list[str] = []
    for status in sequence:
        if accepts(current, status):
            assert current not in TERMINAL_STATUSES
            current = status
            applied.append(status)
    if any(s in TERMINAL_STATUSES for s in applied):
        assert applied[-1] in TERMINAL_STATUSES and sum(s in TERMINAL_STATUSES for s in applied) == 1
    order = ["NotStarted", "Queued", "Starting", "Running", "Finalizing", "Completed"]
    ranks = [order.index(s) for s in applied if s in order]
    assert ranks == sorted(ranks)


@given(st.lists(st.integers(1, 8), min_size=1, max_size=20))
def test_resent_batches_are_dropped(seqs: list[int]) -> None:
    session = new_id()
    records = [
        Decoded(
            _source(b"", i),
            decode_record(_source(raw(RUN, session, seq, scalars("x", "float", [float(seq)])))).batch,
            1,
        )  # type: ignore[union-attr]
        for i, seq in enumerate([1, *seqs])
    ]
    records[0] = Decoded(
        records[0].source,
        decode_record(_source(raw(RUN, session, 1, started(), scalars("x", "float", [1.0])))).batch,  # type: ignore[union-attr]
        1,
    )
    plan = build_plan(records, {}, {}, {})
    expected, high = [], 0
    for seq in [1, *seqs]:
        if seq > high:
            expected.append(float(seq))
            high = seq
    assert plan.scalars[(RUN, "x")].joined(is_text=False)[3].tolist() == expected
    assert plan.duplicates == len(seqs) + 1 - len(expected)
    assert plan.sessions[session] == (RUN, high)


@given(st.lists(st.sampled_from(["float", "int", "bool", "str", "list"]), min_size=1, max_size=10))
def test_type_conflicts_reject_whole_batches(kinds: list[str]) -> None:
    session = new_id()
    values = {"float": [0.5], "int": [1], "bool": [True], "str": ["s"]}
    records: list[Decoded | DeadLetter] = []
    for seq, kind in enumerate(kinds, start=1):
        event = (
            {"type": "list", "name": "m", "time": T0, "values": [1]}
            if kind == "list"
            else scalars("m", kind, values[kind])
        )
        decoded = decode_record(_source(raw(RUN, session, seq, started(), event), seq))
        assert isinstance(decoded, Decoded)
        records.append(decoded)
    plan = build_plan(records, {}, {}, {})
    have: str | None = None
    accepted = 0
    for kind in kinds:
        if have is None or have == kind or {have, kind} == {"int", "float"}:
            have = "float" if {have, kind} == {"int", "float"} else kind
            accepted += 1
    assert plan.batches == accepted
    assert [d.reason for d in plan.dead] == ["type_conflict"] * (len(kinds) - accepted)
    state = plan.series[(RUN, "m")]
    assert (state.kind, state.value_type) == (("list", None) if have == "list" else ("scalar", have))


@fuzz_settings(examples(200))
@given(
    st.lists(
        st.tuples(st.floats(allow_nan=True, allow_infinity=True), st.integers(0, 3), st.integers(0, 5)),
        min_size=1,
        max_size=30,
    )
)
def test_summary_matches_a_naive_computation(points: list[tuple[float, int, int]]) -> None:
    columns = (
        list(range(len(points))),
        [float(t) for _, t, _ in points],
        [o for _, _, o in points],
        [v for v, _, _ in points],
    )
    n, low, high, max_step, last_step, last_time, last_ordinal, last_value, last_text = summarize(
        *columns, is_text=False
    )
    finite = [v for v, _, _ in points if math.isfinite(v)]
    assert n == len(points) and max_step == len(points) - 1
    assert (low, high) == ((min(finite), max(finite)) if finite else (None, None))
    best = max(range(len(points)), key=lambda i: (points[i][1], points[i][2], i))
    assert (last_time, last_ordinal) == (float(points[best][1]), points[best][2])
    assert last_text is None
    assert last_value == points[last_step][0] or (math.isnan(last_value) and math.isnan(points[last_step][0]))
