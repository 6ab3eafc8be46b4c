"""Bad records on the real events topic, consumed by the real ingest worker (issue 7, "Bad input: Kafka";
issue 13).

Hypothesis generates bad records - random bytes, truncated batches, JSON of
the wrong shape at every level, unknown versions, events for runs that never
started, integers beyond 64 bits, nesting beyond what orjson writes, NUL where
PostgreSQL cannot store it, and mutations of valid records (the ones the
decoder refuses, with the reason it gives: tests/test_fuzz_decoder.py) - each
with the dead-letter reason it must get. They are produced
between the batches of a few good runs (whose steps go back and forth and
whose batches are partly sent twice), plus two 10 MB records. Then: every
good point is stored exactly once, every bad record is on the dead-letter
topic with its reason and its original bytes, and the worker is still
running and still storing.

Good records are built with the format's own helpers (``scalars_event``,
``encode_batch``) so they follow the wire format as it changes; bad ones are
hand-written JSON of version 1, which stays readable.
"""

from __future__ import annotations

import itertools
import os
import random
import struct
import subprocess
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, assume, given
from hypothesis import strategies as st

from ingest._decoder import DeadLetter, Source, decode_record
from runstream.config import Settings
from runstream.events import MAX_RECORD_BYTES, STATUSES, Batch, encode_batch, scalars_event
from runstream.kafka import client_options
from tests.fuzzing import SEED, examples, fuzz_settings
from tests.support import eventually
from tests.test_fuzz_decoder import mutated_bytes, mutated_events, nested, to_json
from tests.test_ingest_support import T0, dead_letters, points, send, started

pytestmark = pytest.mark.fuzz

PER_KIND = examples(25)
GOOD_RUNS = 5
BATCHES = 6  # per good run; the last one goes after every bad record
POINTS_PER_BATCH = 20
HUGE_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Bad:
    """A bad record and the dead-letter reasons it may get (more than one only where the format leaves a choice)."""

    what: str
    value: bytes | None
    reasons: frozenset[str]


def _bad(what: str, value: bytes | None, *reasons: str) -> Bad:
    return Bad(what, value, frozenset(reasons))


# --- bad records ------------------------------------------------------------

#: Every bad record gets a run and session of its own: derandomised Hypothesis draws the same uuids
#: again and again, and two records of one session with one seq are one batch sent twice (the
#: second a duplicate, never a dead letter).
_ids = itertools.count(1)
_ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)  # what JSON (orjson) carries
_not_uuid = st.one_of(
    st.text(max_size=40).filter(lambda t: not _parses_as_uuid(t)),
    _ints,
    st.none(),
    st.lists(_ints, max_size=3),
)
_json = st.recursive(
    st.none() | st.booleans() | _ints | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _parses_as_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


# Valid version-1 events, to take apart. The fields each type requires:
# dropping any one of them is a bad_shape.
_EVENTS: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "run_started": (
        {"type": "run_started", "time": T0, "experiment": "e", "display_name": None},
        ("time", "experiment"),
    ),
    "status": ({"type": "status", "time": T0, "status": "Running", "error": None}, ("time", "status")),
    "heartbeat": ({"type": "heartbeat", "time": T0}, ("time",)),
    "scalars": (
        {"type": "scalars", "name": "x", "kind": "str", "steps": [0], "times": [T0], "ordinals": [0], "values": ["a"]},
        ("name", "kind", "steps", "times", "ordinals", "values"),
    ),
    "list": ({"type": "list", "name": "l", "time": T0, "values": [1]}, ("name", "time", "values")),
    "row": ({"type": "row", "name": "r", "time": T0, "columns": {"a": 1}}, ("name", "time", "columns")),
    "table": ({"type": "table", "name": "t", "time": T0, "columns": {"a": [1]}}, ("name", "time", "columns")),
    "image": ({"type": "image", "name": "i", "time": T0, "file": "f.png"}, ("name", "time", "file")),
    "tags": ({"type": "tags", "time": T0, "tags": {"a": "b"}}, ("time", "tags")),
    "properties": ({"type": "properties", "time": T0, "properties": {"a": "b"}}, ("time", "properties")),
}


def _v1(events: Any, **fields: Any) -> bytes:
    """A version-1 batch (fresh ids, seq 1) with ``fields`` replaced."""
    doc = {"v": 1, "run": str(uuid.uuid4()), "session": str(uuid.uuid4()), "seq": 1, "events": events}
    return orjson.dumps(doc | fields)


def _reason_for_bytes(data: bytes) -> str:
    """What any bytes must be refused as: not JSON, or JSON that is not a batch of a known version."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return "not_json"
    return "bad_version" if isinstance(doc, dict) else "bad_shape"


KINDS = (
    "bytes",
    "truncated",
    "not an object",
    "version",
    "run id",
    "session id",
    "seq",
    "events",
    "event",
    "event type",
    "missing field",
    "status",
    "columns",
    "time",
    "packed column",
    "unknown run",
    "int overflow",
    "deep",
    "nul",
    "mutation",
)


@st.composite
def _bad_record(draw: st.DrawFn, kind: str) -> Bad:
    run, session = str(uuid.UUID(int=next(_ids))), str(uuid.UUID(int=next(_ids)))
    if kind == "bytes":
        data = draw(st.binary(max_size=300))
        return _bad(kind, data, _reason_for_bytes(data))
    if kind == "truncated":
        whole = encode_batch(Batch(run, session, 1, [_scalars(draw(st.integers(1, 30)))]))
        # No proper prefix of a JSON object is JSON.
        return _bad(kind, whole[: draw(st.integers(1, len(whole) - 1))], "not_json")
    if kind == "not an object":
        return _bad(kind, orjson.dumps(draw(_json.filter(lambda v: not isinstance(v, dict)))), "bad_shape")
    if kind == "version":
        # Booleans and floats that equal 1 or 2 are unknown versions too.
        version = draw((_ints | _json).filter(lambda v: type(v) is not int or v not in (1, 2)))
        return _bad(kind, _v1([], v=version), "bad_version")
    if kind == "run id":
        return _bad(kind, _v1([], run=draw(_not_uuid)), "bad_run_id")
    if kind == "session id":
        return _bad(kind, _v1([], session=draw(_not_uuid)), "bad_session_id")
    if kind == "seq":
        seq = draw(
            st.one_of(
                st.integers(min_value=-(2**63), max_value=0), st.floats(), st.text(max_size=5), st.none(), st.booleans()
            )
        )
        return _bad(kind, _v1([], seq=seq), "bad_shape")
    if kind == "events":
        return _bad(kind, _v1(draw(_json.filter(lambda v: not isinstance(v, list)))), "bad_shape")
    if kind == "event":
        return _bad(kind, _v1([draw(_json.filter(lambda v: not isinstance(v, dict)))]), "bad_shape")
    if kind == "event type":
        name = draw(st.one_of(st.text(max_size=12).filter(lambda t: t not in _EVENTS), _json.filter(_not_a_type)))
        return _bad(kind, _v1([{"type": name, "time": T0}]), "bad_event_type")
    if kind == "missing field":
        template, required = _EVENTS[draw(st.sampled_from(sorted(_EVENTS)))]
        dropped = draw(st.sampled_from(required))
        return _bad(kind, _v1([{k: v for k, v in template.items() if k != dropped}]), "bad_shape")
    if kind == "status":
        status = draw(st.text(max_size=15).filter(lambda s: s not in STATUSES))
        return _bad(kind, _v1([{"type": "status", "time": T0, "status": status}]), "bad_status")
    if kind == "columns":
        # Version-1 columns that differ in length, or an int column holding something else.
        n = draw(st.integers(0, 4))
        event = {"type": "scalars", "name": "x", "kind": "int", "steps": list(range(n)), "times": [T0] * n}
        if draw(st.booleans()):
            event |= {"ordinals": list(range(n + 1)), "values": list(range(n))}
            return _bad(kind, _v1([event]), "bad_shape")
        odd = draw(st.one_of(st.text(max_size=4), st.floats(allow_nan=False), st.none(), st.booleans()))
        event |= {"steps": list(range(n + 1)), "times": [T0] * (n + 1), "ordinals": list(range(n + 1))}
        return _bad(kind, _v1([event | {"values": [*range(n), odd]}]), "bad_value")
    if kind == "time":
        heartbeat_time = draw(
            st.one_of(st.floats(min_value=1e12, allow_infinity=False), st.floats(max_value=-1e12, allow_infinity=False))
        )
        return _bad(kind, _v1([{"type": "heartbeat", "time": heartbeat_time}]), "bad_value")
    if kind == "packed column":
        # The current format's scalars with one packed column replaced by any JSON.
        event = _scalars(3)
        column = draw(st.sampled_from(["steps", "times", "ordinals", "f64"]))
        event[column] = draw(_json.filter(lambda v: not isinstance(v, dict)))
        return _bad(kind, encode_batch(Batch(run, session, 1, [event])), "bad_shape", "bad_value")
    if kind == "int overflow":
        return _int_overflow(draw, run, session)
    if kind == "deep":
        depth = draw(st.integers(252, 1100))
        value = nested(
            draw(st.none() | st.integers() | st.text(max_size=4)), depth, draw(st.sampled_from(["list", "dict"]))
        )
        event = draw(
            st.sampled_from(
                [
                    {"type": "status", "time": T0, "status": "Failed", "error": {"e": value}},
                    {"type": "list", "name": "l", "time": T0, "values": [value]},
                    {"type": "tags", "time": T0, "tags": {"a": value}},
                ]
            )
        )
        return _bad(kind, to_json(_doc(run, session, 1, [event])), "too_deep", "not_json")
    if kind == "nul":
        text = "".join(draw(st.permutations(["\x00", *draw(st.text(max_size=6))])))
        event = draw(
            st.sampled_from(
                [
                    scalars_event(text, "float", [0], [T0], [0], [1.0]),
                    scalars_event("s", "str", [0], [T0], [0], [text]),
                    {"type": "tags", "time": T0, "tags": {text: "v"}},
                    {"type": "properties", "time": T0, "properties": {"k": text}},
                    {"type": "status", "time": T0, "status": "Failed", "error": {"m": text}},
                    {"type": "run_started", "time": T0, "experiment": text, "display_name": None},
                ]
            )
        )
        return _bad(kind, orjson.dumps(_doc(run, session, 1, [event])), "bad_value")
    if kind == "mutation":
        # A valid record changed anywhere, that the decoder refuses: whatever reason it gives, ingest must.
        data = draw(mutated_events() | mutated_bytes())
        verdict = decode_record(Source("t", 0, 0, None, data))
        assume(isinstance(verdict, DeadLetter))
        return _bad(kind, data, verdict.reason)  # type: ignore[union-attr]
    # A well-formed batch for a run nobody started.
    seq = draw(st.integers(1, 1000))  # a new session: further out would be a seq_gap
    return _bad(kind, encode_batch(Batch(run, session, seq, [_scalars(draw(st.integers(1, 30)))])), "unknown_run")


def _doc(run: str, session: str, seq: Any, events: list[Any]) -> dict[str, Any]:
    return {"v": 2, "run": run, "session": session, "seq": seq, "events": events}


def _int_overflow(draw: st.DrawFn, run: str, session: str) -> Bad:
    """Integers JSON carries but int64 (steps, ordinals, seq, PostgreSQL's bigint) cannot."""
    huge = st.integers(min_value=2**63) | st.integers(max_value=-(2**63) - 1)
    where = draw(st.sampled_from(["steps", "ordinals", "seq", "time"]))
    if where == "seq":
        return _bad("int overflow", to_json(_doc(run, session, draw(huge), [])), "bad_shape")
    if where == "time":
        return _bad(
            "int overflow", to_json(_doc(run, session, 1, [{"type": "heartbeat", "time": draw(huge)}])), "bad_value"
        )
    event = _scalars(draw(st.integers(1, 5)))
    spec = draw(st.sampled_from([{"from": 0, "step": draw(huge)}, {"from": draw(huge), "step": 1}]))
    # Beyond 64 bits JSON integers reach Python as floats (orjson): no longer {"from": int, "step": int}.
    return _bad("int overflow", to_json(_doc(run, session, 1, [{**event, where: spec}])), "bad_value", "bad_shape")


def _not_a_type(value: Any) -> bool:
    return not (isinstance(value, str) and value in _EVENTS)


def _huge() -> list[Bad]:
    """Two records over the limit: random bytes, and a well-formed batch padded past it."""
    run, session = str(uuid.uuid4()), str(uuid.uuid4())
    padding = {"type": "list", "name": "pad", "time": T0, "values": ["x" * 1000] * (HUGE_BYTES // 1000)}
    batch = encode_batch(Batch(run, session, 1, [padding]))
    assert len(batch) > MAX_RECORD_BYTES
    return [_bad("10 MB bytes", os.urandom(HUGE_BYTES), "too_large"), _bad("10 MB batch", batch, "too_large")]


def _generate() -> list[Bad]:
    """PER_KIND records of every kind (drawn kind by kind: one strategy would favour the first)."""
    found: list[Bad] = []
    for kind in KINDS:

        @fuzz_settings(PER_KIND, suppress=list(HealthCheck))
        @given(_bad_record(kind))
        def collect(bad: Bad) -> None:
            found.append(bad)

        collect()
    return found + [_bad("no value", None, "empty")] + _huge()


# --- good records -----------------------------------------------------------


def _scalars(n: int) -> dict[str, Any]:
    """A well-formed scalars event of ``n`` points, in the current wire format."""
    steps = list(range(n))
    return scalars_event("loss", "float", steps, [T0 + s for s in steps], steps, _values(steps))


def _values(steps: list[int]) -> list[float]:
    # NaN, ±Inf and -0.0 among them: stored values must be bit-exact.
    special = [float("nan"), float("inf"), float("-inf"), -0.0]
    return [special[s % 4] if s % 7 == 0 else s * 0.25 - 3 for s in steps]


@dataclass
class GoodRun:
    run: str
    session: str
    records: list[bytes]
    steps: list[int]


def _good_run(rng: random.Random, index: int) -> GoodRun:
    """BATCHES batches whose step ranges come in shuffled order, each batch's steps shuffled too."""
    run, session = str(uuid.uuid4()), str(uuid.uuid4())
    blocks = list(range(BATCHES))
    rng.shuffle(blocks)
    records, sent = [], []
    for seq, block in enumerate(blocks, start=1):
        steps = list(range(block * POINTS_PER_BATCH, (block + 1) * POINTS_PER_BATCH))
        rng.shuffle(steps)
        sent += steps
        event = scalars_event(
            "loss",
            "float",
            steps,
            [T0 + s for s in steps],
            range(len(sent) - len(steps), len(sent)),
            _values(steps),
        )
        events = [started(f"fuzz-kafka-{index}"), event] if seq == 1 else [event]
        records.append(encode_batch(Batch(run, session, seq, events)))
    return GoodRun(run, session, records, sent)


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


# --- the test ---------------------------------------------------------------


async def test_bad_records_are_dead_lettered_with_their_reason_and_good_ones_stored_once(
    settings: Settings, db: asyncpg.Pool, ingest_worker: subprocess.Popen[bytes]
) -> None:
    bad = _generate()
    rng = random.Random(SEED)
    good = [_good_run(rng, i) for i in range(GOOD_RUNS)]
    # (key, value, bad case or None): each run's batches in order, bad records
    # and resent batches in between, the last batch of every run at the end.
    stream: list[tuple[str, bytes | None, Bad | None]] = []
    sent = dict.fromkeys((g.run for g in good), 0)
    records = {g.run: g.records for g in good}
    for case in bad:
        run = rng.choice(good).run
        if sent[run] < BATCHES - 1:
            stream.append((run, records[run][sent[run]], None))
            sent[run] += 1
        if sent[run] and rng.random() < 0.2:  # a batch sent before, again
            stream.append((run, records[run][rng.randrange(sent[run])], None))
        stream.append((run, case.value, case))
    stream += [(run, records[run][i], None) for run in records for i in range(sent[run], BATCHES)]
    where: dict[tuple[int, int], Bad] = {}
    async with AIOKafkaProducer(**client_options(settings), acks="all", max_request_size=2 * HUGE_BYTES) as producer:
        for key, value, expected in stream:
            [offset] = await send(producer, settings.topic, key, [value])  # type: ignore[list-item]
            if expected is not None:
                where[offset] = expected

    async def sessions_done() -> int:
        return int(
            await db.fetchval(
                "SELECT count(*) FROM producer_sessions WHERE session_id = ANY($1::uuid[]) AND last_seq = $2",
                [g.session for g in good],
                BATCHES,
            )
        )

    await eventually(
        sessions_done, lambda n: n == GOOD_RUNS, what="every good run's last batch stored", timeout_seconds=90
    )
    for g in good:
        stored = sorted((step, _bits(value)) for step, _, _, value, _ in await points(db, g.run, "loss"))
        assert stored == sorted((s, _bits(v)) for s, v in zip(g.steps, _values(g.steps), strict=True)), g.run

    letters = await dead_letters(settings, set(where), timeout_ms=90_000)
    wrong = {
        offset: (case.what, case.reasons, letters.get(offset, {}).get("reason"), (case.value or b"")[:200])
        for offset, case in where.items()
        if letters.get(offset, {}).get("reason") not in case.reasons
    }
    assert not wrong, list(wrong.values())[:20]
    assert all(letters[offset]["value"] == case.value for offset, case in where.items())
    assert all(letter["message"] for letter in letters.values())
    assert ingest_worker.poll() is None, "the worker died"

    by_reason = Counter(letters[offset]["reason"] for offset in where)
    by_case = Counter(case.what for case in where.values())
    print(
        f"\n[fuzz-kafka] seed {SEED}: {len(where)} bad records generated, {len(where) - len(wrong)} dead-lettered"
        f" with the right reason; {sum(len(g.records) for g in good)} good batches"
        f" ({len(stream) - len(where)} sent incl. resends) stored exactly once"
        f"\n[fuzz-kafka] by reason {dict(by_reason)}\n[fuzz-kafka] by case {dict(by_case)}"
    )
