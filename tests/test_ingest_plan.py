"""Pure logic of ingest (no services): decoding, status rules, the flush planner, summaries, session seqs, health."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest._decoder import DeadLetter, Decoded, Source, decode_record
from ingest._health import Vitals, assess
from ingest._plan import build_plan
from ingest._sessions import MAX_SEQ_GAP, SEQ_PATIENCE, SessionState, Verdict
from ingest._status import accepts
from ingest._summary import summarize, summarize_all
from runstream.chunks import PointColumns
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
    """Every copy of a seq after the first is dropped; every seq not seen yet is stored, even out of
    order (a session's batches read from two partitions around a partition change)."""
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
    expected = list(dict.fromkeys([1, *seqs]))  # first copies, in the order read
    assert plan.scalars[(RUN, "x")].joined(is_text=False)[3].tolist() == [float(s) for s in expected]
    assert plan.duplicates == len(seqs) + 1 - len(expected)
    state = plan.sessions[session]
    contiguous = max(k for k in range(9) if set(range(1, k + 1)) <= set(expected))
    assert state.last_seq == contiguous  # what readers of producer_sessions.last_seq rely on
    assert {s for lo, hi in zip(state.ahead[::2], state.ahead[1::2], strict=True) for s in range(lo, hi + 1)} == {
        s for s in expected if s > contiguous
    }


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


@given(
    st.lists(
        st.lists(
            st.tuples(st.floats(allow_nan=True, allow_infinity=True), st.integers(0, 3), st.integers(0, 5)),
            min_size=1,
            max_size=12,
        ),
        min_size=1,
        max_size=6,
    ),
    st.booleans(),
)
def test_summaries_of_a_flush_equal_each_series_summary(
    series: list[list[tuple[float, int, int]]], ordered: bool
) -> None:
    """summarize_all over a flush's series equals summarize of each, then its least time: points in (time, ordinal)
    order (the usual case, no sort) or in any order, ties included."""
    columns = []
    for points in series:
        if ordered:
            points = sorted(points, key=lambda p: (p[1], p[2]))
        columns.append(
            PointColumns(
                np.arange(len(points), dtype=np.int64) * 3 - 2,
                np.array([float(t) for _, t, _ in points]),
                np.array([o for _, _, o in points], dtype=np.int64),
                np.array([v for v, _, _ in points]),
            )
        )
    expected = [
        (*summarize(c.steps, c.times, c.ordinals, c.values, is_text=False), float(c.times.min())) for c in columns
    ]
    got = summarize_all(columns)
    assert [_nan_as_none(row) for row in got] == [_nan_as_none(row) for row in expected]


def _nan_as_none(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple("nan" if isinstance(v, float) and math.isnan(v) else v for v in row)


@given(st.lists(st.integers(1, 60), min_size=1, max_size=120))
def test_a_session_dedupes_exactly_in_any_order(seqs: list[int]) -> None:
    """Each seq is new once and a duplicate after; last_seq is the gapless prefix, ahead the rest."""
    state, seen = SessionState(RUN), set[int]()
    for seq in seqs:
        assert state.verdict(seq, 1) is (Verdict.DUPLICATE if seq in seen else Verdict.NEW)
        if seq not in seen:
            assert state.mark(seq, 1) == (0, 0)
            seen.add(seq)
        prefix = max(k for k in range(61) if set(range(1, k + 1)) <= seen)
        assert state.last_seq == prefix
        assert set(_expand(state.ahead)) == {s for s in seen if s > prefix}
        assert all(state.seen(s) == (s in seen) for s in range(1, 62))


def _expand(ranges: list[int]) -> list[int]:
    return [s for lo, hi in zip(ranges[::2], ranges[1::2], strict=True) for s in range(lo, hi + 1)]


@given(st.integers(1, 10_000), st.integers(MAX_SEQ_GAP + 1, 2**63 - 1))
def test_a_seq_far_beyond_is_a_gap_and_changes_nothing(last: int, jump: int) -> None:
    state = SessionState(RUN, last, [], 1)
    seq = min(last + jump, 2**63 - 1)
    assert state.verdict(seq, 1) is Verdict.GAP
    assert (state.last_seq, state.ahead) == (last, [])
    assert state.verdict(last + 1, 1) is Verdict.NEW  # the session goes on


def test_after_kafka_lost_data_a_session_resumes_past_what_was_lost() -> None:
    state = SessionState(RUN, 10, [], 1)
    far = 10 + MAX_SEQ_GAP + 490
    assert state.verdict(far, 1) is Verdict.GAP
    assert state.verdict(far, 2) is Verdict.NEW  # epoch 2: a new topic
    assert state.mark(far, 2) == (far - 11, 0)  # 11..far-1 went with the old topic: too many to wait for
    assert (state.last_seq, state.epoch) == (far, 2)
    assert state.verdict(2**63 - 1, 3) is Verdict.GAP  # even then, not without bound
    fresh = SessionState(RUN)
    assert fresh.verdict(MAX_SEQ_GAP + 5, 1) is Verdict.GAP  # a new session starts at 1...
    assert fresh.verdict(MAX_SEQ_GAP + 5, 2) is Verdict.NEW  # ...unless its first batches may be lost


def test_after_a_topic_change_a_skipped_seq_that_arrives_late_is_stored_and_counted_back() -> None:
    """The new topic need not hold a session's batches in seq order (the replace-broker chaos saw it)."""
    state = SessionState(RUN, 30, [], 2)
    assert state.mark(36, 3) == (5, 0)  # 31..35 unseen: counted lost when the new topic shows it
    assert state.verdict(37, 3) is Verdict.NEW and state.mark(37, 3) == (0, 0)
    for late in (33, 31):  # ...but two of them were only late
        assert state.verdict(late, 3) is Verdict.NEW
        assert state.mark(late, 3) == (0, 1)
        assert state.verdict(late, 3) is Verdict.DUPLICATE
    assert (state.last_seq, state.ahead) == (31, [33, 33, 36, 37])
    # Once the session has gone far past the gap it is closed; what was counted is not counted again.
    beyond = 33 + MAX_SEQ_GAP + 1
    for seq in range(38, SEQ_PATIENCE + 40):
        state.mark(seq, 3)
    assert state.verdict(beyond, 3) is Verdict.NEW
    assert state.mark(beyond, 3) == (0, 0)
    assert (state.last_seq, state.ahead) == (SEQ_PATIENCE + 39, [beyond, beyond])
    assert state.verdict(32, 3) is Verdict.DUPLICATE and state.verdict(34, 3) is Verdict.DUPLICATE
    # Another topic change while a gap is open counts only what is new since.
    again = SessionState(RUN, 30, [36, 40], 3, floor=35)
    assert again.mark(45, 4) == (4, 0)  # 41..44; 31..35 were counted at the first change
    assert again.mark(32, 4) == (0, 1)


def test_a_gap_that_never_fills_is_given_up_once_the_session_has_gone_on() -> None:
    state = SessionState(RUN)
    for seq in range(2, SEQ_PATIENCE + 2):  # seq 1 never comes
        state.mark(seq, 1)
    assert state.last_seq == 0 and len(_expand(state.ahead)) == SEQ_PATIENCE
    beyond = MAX_SEQ_GAP + 5
    assert state.verdict(beyond, 1) is Verdict.NEW
    assert state.mark(beyond, 1) == (1, 0)  # seq 1, given up; the ones between may still come
    assert (state.last_seq, state.ahead) == (SEQ_PATIENCE + 1, [beyond, beyond])
    assert state.verdict(SEQ_PATIENCE + 2, 1) is Verdict.NEW


def _vitals(**changes: Any) -> Vitals:
    base = Vitals(
        now=1000.0,
        started_at=900.0,
        progress_at=995.0,
        oldest_waiting_at=None,
        records_waiting=0,
        lag=0,
        kafka_failing_since=None,
        kafka_error=None,
        flush_error=None,
        dead_letter_topic="dlq",
        dead_letter_failing_since=None,
        dead_letter_error=None,
        dead_letters_held=0,
    )
    return dataclasses.replace(base, **changes)


def test_health_says_what_is_wrong() -> None:
    assert assess(_vitals(), stall_seconds=30).ready
    # Catching up on an old backlog while storing: healthy.
    assert assess(_vitals(oldest_waiting_at=100.0, records_waiting=9), stall_seconds=30).ready
    stuck = assess(
        _vitals(oldest_waiting_at=900.0, records_waiting=9, progress_at=900.0, flush_error="x"), stall_seconds=30
    )
    assert not stuck.ready and stuck.reasons[0].startswith("stalled: 9 records waiting, the oldest for 100 s")
    # A fresh process that has stored nothing while old records wait: a crash loop looks like this.
    fresh = assess(
        _vitals(oldest_waiting_at=400.0, records_waiting=1, progress_at=None, started_at=999.0), stall_seconds=30
    )
    assert not fresh.ready and "nothing stored since this process started" in fresh.reasons[0]
    kafka = assess(_vitals(kafka_failing_since=950.0, kafka_error="e"), stall_seconds=30)
    assert not kafka.ready and kafka.reasons == ["cannot reach Kafka for 50 s: e"]
    dlq = assess(_vitals(dead_letter_failing_since=990.0, dead_letters_held=3, dead_letter_error="e"), stall_seconds=30)
    assert not dlq.ready and "3 dead letters kept in PostgreSQL" in dlq.reasons[0]
    held = assess(_vitals(held=[4, 5], notices=["a change"]), stall_seconds=30)
    assert held.ready and held.body["notices"][0] == "a change" and "[4, 5]" in held.body["notices"][1]
