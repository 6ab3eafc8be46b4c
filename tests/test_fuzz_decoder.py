"""The decoder over the whole JSON value space (issue 13): every record decodes into a batch ingest can
store, or is a dead letter with a reason; nothing raises.

Integers of any size, floats, strings with any character, nesting up to 10,000 deep, arrays of a
million elements, every event type with every field replaced, dropped or nested, the batch's own
fields, and byte-level mutations of valid records. No services here: what decodes is put through all
the writer does before SQL (the planner, the chunk encoder, the summaries, the JSON re-encoding; any
warning is an error) and checked against what PostgreSQL refuses (NUL in text and jsonb, indexed names
over MAX_INDEXED_NAME_BYTES, timestamps outside datetime's range). test_fuzz_kafka.py sends the same
kinds of record through the real broker and database, and checks that a valid record behind them is
stored.

Deterministic in `make test`; `make fuzz` draws fresh cases, more of them (tests/fuzzing.py).
Run with ``-s`` to see the dead-letter reasons the suite produced, with counts.
"""

from __future__ import annotations

import base64
import json
import math
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest._compaction import slices
from ingest._decoder import MAX_INDEXED_NAME_BYTES, DeadLetter, Decoded, Source, decode_record
from ingest._plan import RunState, build_plan
from ingest._summary import summarize
from ingest._writer import _ts
from runstream.chunks import encode_chunk
from runstream.events import Batch, encode_batch, scalars_event
from tests.fuzzing import examples, fuzz_settings
from tests.test_ingest_support import T0

pytestmark = pytest.mark.fuzz

#: Every reason a record may be dead-lettered with before it reaches PostgreSQL.
REASONS = frozenset(
    {
        "not_json",
        "bad_version",
        "bad_shape",
        "bad_run_id",
        "bad_session_id",
        "bad_event_type",
        "bad_status",
        "bad_value",
        "too_large",
        "too_deep",
        "empty",
        "ingest_error",
    }
)
#: Outcomes across the module: dead-letter reasons, and "decoded". Printed at the end (pytest -s).
SEEN: Counter[str] = Counter()
EXAMPLES = examples(300)

RUN, SESSION = str(uuid.uuid4()), str(uuid.uuid4())
STARTED = {"type": "run_started", "time": T0, "experiment": "e", "display_name": "d", "parent": None}
#: A valid event of every type and kind, in the current wire format.
TEMPLATES: dict[str, dict[str, Any]] = {
    "run_started": STARTED,
    "status": {"type": "status", "time": T0, "status": "Failed", "error": {"type": "E", "message": "m", "n": [1]}},
    "heartbeat": {"type": "heartbeat", "time": T0},
    "scalars float": scalars_event("loss", "float", [0, 5, 2], [T0, T0 + 1, T0 + 2], [0, 1, 2], [0.5, math.nan, -0.0]),
    "scalars int": scalars_event("n", "int", range(3), [T0] * 3, range(3), [1, -(2**53), 2**53]),
    "scalars bool": scalars_event("ok", "bool", range(2), [T0] * 2, range(2), [True, False]),
    "scalars str": scalars_event("phase", "str", range(2), [T0] * 2, range(2), ["a", "b ✓"]),
    "list": {"type": "list", "name": "l", "time": T0, "values": [1, "a", None, {"$float": "NaN"}]},
    "row": {"type": "row", "name": "r", "time": T0, "columns": {"a": 1, "b": "x"}},
    "table": {"type": "table", "name": "t", "time": T0, "columns": {"a": [1, 2], "b": ["x", None]}},
    "image": {"type": "image", "name": "i", "time": T0, "file": "plots/i.png"},
    "tags": {"type": "tags", "time": T0, "tags": {"team": "a", "gone": None}},
    "properties": {"type": "properties", "time": T0, "properties": {"lr": "0.1"}},
}
FIELDS = sorted({(kind, field) for kind, event in TEMPLATES.items() for field in [*event, "extra"]})
HEADER = {"v": 2, "run": RUN, "session": SESSION, "seq": 1}

# The whole JSON value space: integers of any size, every float JSON can write, any text.
leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**64 + 2)
    | st.integers(min_value=-(2**64) - 2, max_value=-(2**63) + 2)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=25,
)
depths = st.integers(1, 1100) | st.sampled_from([253, 254, 255, 256, 600, 900, 1023, 1024, 1025, 10_000])


class _Text(str):
    """JSON text to write as it is (to_json's punctuation)."""


def to_json(value: Any) -> bytes:
    """JSON text of any Python value: integers of any size and any depth (orjson writes neither, the
    json module recurses), lone surrogates as escapes."""
    out: list[str] = []
    todo: list[Any] = [value]
    while todo:
        item = todo.pop()
        if type(item) is _Text:
            out.append(item)
        elif isinstance(item, dict | list):
            opening, closing = ("{", "}") if isinstance(item, dict) else ("[", "]")
            pairs = item.items() if isinstance(item, dict) else ((None, v) for v in item)
            parts: list[Any] = [_Text(opening)]
            for i, (key, element) in enumerate(pairs):
                parts += [_Text(",")] if i else []
                parts += [_Text(json.dumps(key) + ":")] if key is not None else []
                parts.append(element)
            todo.extend(reversed([*parts, _Text(closing)]))
        else:
            out.append(json.dumps(item, allow_nan=False))
    return "".join(out).encode()


def nested(leaf: Any, depth: int, kind: str) -> Any:
    for _ in range(depth):
        leaf = [leaf] if kind == "list" else {"k": leaf}
    return leaf


def batch_doc(*events: Any, **header: Any) -> dict[str, Any]:
    return {**HEADER, **header, "events": list(events)}


def verdict(data: bytes | None) -> Decoded | DeadLetter:
    """Decode ``data``; a dead letter must name a known reason, anything decoded must be storable."""
    result = decode_record(Source("t", 0, 0, None, data))
    if isinstance(result, DeadLetter):
        assert result.reason in REASONS, result
        assert result.message
        assert result.exception is not None  # every decoder dead letter comes from an exception
        SEEN[result.reason] += 1
    else:
        assert_storable(result)
        SEEN["decoded"] += 1
    return result


def assert_storable(decoded: Decoded) -> None:
    """Everything the writer computes from the batch before SQL works, and holds nothing PostgreSQL refuses."""
    batch = decoded.batch
    plan = build_plan([decoded], {batch.run_id: RunState("Running")}, {}, {})
    assert len(batch.run_id) == 36 and 1 <= batch.seq < 2**63
    for (_, name), state in plan.series.items():
        assert "\x00" not in name and len(name.encode()) <= MAX_INDEXED_NAME_BYTES
        if name in {k[1] for k in plan.scalars}:
            is_text = state.value_type == "str"
            columns = plan.scalars[(batch.run_id, name)].joined(is_text=is_text)
            assert columns[0].dtype == columns[2].dtype == np.int64 and columns[1].dtype == np.float64
            for part in slices(columns):
                encode_chunk(1, *part, is_text=is_text)
            summarize(*columns, is_text=is_text)
            for t in (columns[1].min(), columns[1].max()):
                _ts(float(t))
            if is_text:
                assert all("\x00" not in v for v in columns[3])
    for run in plan.new_runs.values():
        assert "\x00" not in run.experiment and len(run.experiment.encode()) <= MAX_INDEXED_NAME_BYTES
        assert run.display_name is None or "\x00" not in run.display_name
        _ts(run.time)
    for update in plan.run_updates.values():
        for text in (orjson.dumps(update.tags).decode(), orjson.dumps(update.properties).decode(), update.error):
            assert text is None or "\\u0000" not in text  # jsonb refuses it
        for t in (update.ended_at, update.heartbeat_at):
            _ts(t)
    for _, _, t, error in plan.history:
        _ts(t)
        assert error is None or "\\u0000" not in error
    for _, t, _, value in plan.entries:
        assert math.isfinite(t)
        orjson.loads(value)


@pytest.fixture(scope="module", autouse=True)
def _report_reasons() -> Iterator[None]:
    yield
    print(f"\n[fuzz-decoder] outcomes over {sum(SEEN.values())} records: {dict(SEEN.most_common())}")


# --- the crafted records of issue 13 and their variants -------------------------------------------


def test_issue_13_item_1_a_step_of_2_pow_63_is_a_dead_letter_not_a_crash() -> None:
    event = scalars_event("x", "float", [0], [T0], [0], [1.0])
    event["steps"] = {"from": 0, "step": 2**63}
    record = orjson.dumps(batch_doc(STARTED, event))
    assert len(record) < 400
    letter = verdict(record)
    assert isinstance(letter, DeadLetter) and letter.reason == "bad_value"
    assert letter.header is not None and letter.header.seq == 1  # the batch still used up its seq


@pytest.mark.parametrize("depth", [600, 750, 900])
def test_issue_13_item_2_a_status_error_nested_deep_is_a_dead_letter_not_a_stall(depth: int) -> None:
    event = {"type": "status", "time": T0, "status": "Failed", "error": nested(1, depth, "dict")}
    letter = verdict(to_json(batch_doc(STARTED, event)))
    assert isinstance(letter, DeadLetter) and letter.reason == "too_deep"


@pytest.mark.parametrize("column", ["steps", "ordinals"])
@pytest.mark.parametrize(
    "spec",
    [
        {"from": 0, "step": 2**63},
        {"from": 0, "step": -(2**63) - 1},
        {"from": 2**63, "step": 0},
        {"from": -(2**63), "step": -1},
        {"from": 2**63 - 1, "step": 1},
        {"from": 0, "step": 2**64},
        {"from": 0, "step": 10**30},
        {"from": 0, "step": 2**62},
        {"from": 0, "step": 1.5},
        {"from": 0, "step": True},
        {"from": 0, "step": 1, "extra": 0},
    ],
)
def test_progressions_that_leave_64_bits_are_dead_letters(column: str, spec: dict[str, Any]) -> None:
    event = scalars_event("x", "float", range(3), [T0] * 3, range(3), [1.0, 2.0, 3.0])
    event[column] = spec
    letter = verdict(to_json(batch_doc(STARTED, event)))
    assert isinstance(letter, DeadLetter) and letter.reason in {"bad_value", "bad_shape"}


def test_a_progression_reaching_both_ends_of_int64_is_exact() -> None:
    event = scalars_event("x", "float", range(4), [T0] * 4, range(4), [1.0] * 4)
    event["steps"] = {"from": -(2**63), "step": 2**62 + 2**61}  # its middle terms overflow step * i
    decoded = verdict(orjson.dumps(batch_doc(STARTED, {**event, "steps": {"from": -(2**63), "step": 2**62}})))
    assert isinstance(decoded, Decoded)
    assert decoded.batch.events[1]["steps"].tolist() == [-(2**63) + i * 2**62 for i in range(4)]
    assert isinstance(verdict(to_json(batch_doc(STARTED, event))), DeadLetter)  # its last term is 2**63 + 2**62


@pytest.mark.parametrize("seq", [0, -1, 2**63, 2**64 - 1, 2**64, 10**30, 1.0, "1", None, True])
def test_a_seq_postgresql_cannot_hold_is_a_dead_letter(seq: Any) -> None:
    letter = verdict(to_json(batch_doc(STARTED, seq=seq)))
    assert isinstance(letter, DeadLetter) and letter.reason == "bad_shape"


HOSTILE = [
    2**63 - 1,
    2**63,
    -(2**63) - 1,
    2**64,
    10**30,
    -(10**30),
    1e308,
    -1e-308,
    "",
    "\x00",
    "a\x00b",
    "x" * 5000,
    "\ud800",
    [],
    {},
    {"\x00": "\x00"},
    None,
    True,
    nested(0, 300, "list"),
    nested(0, 900, "dict"),
    nested(0, 10_000, "list"),
    list(range(100_000)),
]


#: Their JSON text, written once: to_json copies a _Text as it is.
HOSTILE_JSON = [_Text(to_json(value).decode()) for value in HOSTILE]


@pytest.mark.parametrize(("kind", "field"), FIELDS, ids=[f"{k}.{f}" for k, f in FIELDS])
def test_every_field_of_every_event_type_takes_any_hostile_value(kind: str, field: str) -> None:
    for value in HOSTILE_JSON:
        verdict(to_json(batch_doc(STARTED, {**TEMPLATES[kind], field: value})))
    verdict(to_json(batch_doc(STARTED, {k: v for k, v in TEMPLATES[kind].items() if k != field})))


@pytest.mark.parametrize("field", ["v", "run", "session", "seq", "events"])
def test_every_field_of_the_batch_takes_any_hostile_value(field: str) -> None:
    for value in HOSTILE_JSON:
        verdict(to_json(batch_doc(STARTED, **{field: value})))
    verdict(to_json({k: v for k, v in batch_doc(STARTED).items() if k != field}))


@pytest.mark.parametrize("depth", [253, 254, 255, 256, 1023, 1024, 1025, 10_000])
@pytest.mark.parametrize("kind", ["list", "dict"])
@pytest.mark.parametrize("large", [False, True], ids=["small record", "large record"])
def test_nesting_at_every_depth_decodes_or_is_refused_for_its_depth(depth: int, kind: str, large: bool) -> None:
    """The record's own nesting is 3 (batch, events, event) plus the value's.

    A large record (a long scalars event beside the deep one) has its nesting walked rather than its brackets counted.
    """
    event = {"type": "list", "name": "deep", "time": T0, "values": [nested(0, depth, kind)]}
    n = 50_000 if large else 1
    padding = scalars_event("pad", "float", range(n), [T0] * n, range(n), [0.5] * n)
    record = to_json(batch_doc(STARTED, padding, event))
    assert (len(record) > 64 * 1024) is large
    result = verdict(record)
    if depth + 4 <= 254:
        assert isinstance(result, Decoded)
    else:
        assert isinstance(result, DeadLetter) and result.reason in {"too_deep", "not_json"}


def test_huge_arrays_decode_or_are_too_large() -> None:
    million = {"type": "list", "name": "big", "time": T0, "values": list(range(1_000_000))}
    assert isinstance(verdict(orjson.dumps(batch_doc(STARTED, million))), Decoded)
    n = 300_000
    many = scalars_event("x", "float", range(n), np.full(n, T0).tolist(), range(n), np.arange(n, dtype=float).tolist())
    decoded = verdict(orjson.dumps(batch_doc(STARTED, many)))
    assert isinstance(decoded, Decoded) and decoded.points == n
    k = n // 3  # v1 spells every number out
    v1 = {"type": "scalars", "name": "v1", "kind": "int", "steps": list(range(k)), "times": [T0] * k,
          "ordinals": list(range(k)), "values": list(range(k))}  # fmt: skip
    assert isinstance(verdict(orjson.dumps(batch_doc(STARTED, v1, v=1))), Decoded)
    too_many = {**many, "times": base64.b64encode(bytes(8 * 1_100_000)).decode()}
    letter = verdict(orjson.dumps(batch_doc(STARTED, too_many)))
    assert isinstance(letter, DeadLetter) and letter.reason == "too_large"


# --- generated ------------------------------------------------------------------------------------


@st.composite
def mutated_events(draw: st.DrawFn) -> bytes:
    """A valid batch with one field of one event replaced, dropped, nested or overflowed."""
    kind, field = draw(st.sampled_from(FIELDS))
    event = dict(TEMPLATES[kind])
    action = draw(st.sampled_from(["replace", "drop", "nest", "int"]))
    if action == "drop":
        event.pop(field, None)
    elif action == "nest":
        event[field] = nested(draw(leaves), draw(depths), draw(st.sampled_from(["list", "dict"])))
    elif action == "int" and field in ("steps", "ordinals"):
        event[field] = {"from": draw(st.integers()), "step": draw(st.integers())}
    elif action == "int":
        event[field] = draw(st.integers())
    else:
        event[field] = draw(json_values)
    events = draw(st.permutations([STARTED, event]))
    return to_json(batch_doc(*events, seq=draw(st.integers(1, 2**63 - 1) | st.integers())))


@st.composite
def any_batches(draw: st.DrawFn) -> bytes:
    """Any JSON at the places a batch has, and anywhere else."""
    events = draw(st.lists(json_values | st.sampled_from(list(TEMPLATES.values())), max_size=4))
    doc = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "v": st.sampled_from([1, 2]) | json_values,
                "run": st.just(RUN) | json_values,
                "session": st.just(SESSION) | json_values,
                "seq": st.integers() | json_values,
                "events": st.just(events) | json_values,
            },
        )
    )
    return to_json(draw(st.one_of(st.just(doc), json_values)))


@st.composite
def mutated_bytes(draw: st.DrawFn) -> bytes:
    """A valid record, then bytes flipped, cut out, put in, or the record cut short."""
    kinds = draw(st.lists(st.sampled_from(sorted(TEMPLATES)), min_size=1, max_size=4))
    data = bytearray(encode_batch(Batch(RUN, SESSION, 7, [STARTED, *(TEMPLATES[k] for k in kinds)])))
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        if action == "flip":
            data[where] ^= 1 << draw(st.integers(0, 7))
        elif action == "delete":
            del data[where : where + draw(st.integers(1, 8))]
        elif action == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=8) | st.sampled_from([b"\\u0000", b"[" * 300]))
        else:
            del data[where:]
        if not data:
            break
    return bytes(data)


@fuzz_settings(EXAMPLES)
@given(mutated_events())
def test_any_one_field_changed_decodes_storably_or_dead_letters(record: bytes) -> None:
    verdict(record)


@fuzz_settings(EXAMPLES)
@given(any_batches())
def test_any_json_value_as_a_record_decodes_storably_or_dead_letters(record: bytes) -> None:
    verdict(record)


@fuzz_settings(EXAMPLES)
@given(mutated_bytes())
def test_any_byte_mutation_of_a_valid_record_decodes_storably_or_dead_letters(record: bytes) -> None:
    verdict(record)


@fuzz_settings(EXAMPLES)
@given(st.binary(max_size=512) | st.none())
def test_any_bytes_decode_storably_or_dead_letter(record: bytes | None) -> None:
    verdict(record)
