"""The event codec refuses malformed batches with EventError and a reason code."""

from __future__ import annotations

import base64
import math
import uuid

import orjson
import pytest

from ingest._decoder import Decoded, Source, decode_record
from ingest._plan import _APPLY, build_plan
from runstream import events
from runstream.events import Batch, EventError, decode_batch, encode_batch, scalars_event


def _record(events: list[object]) -> bytes:
    return orjson.dumps({"v": 1, "run": str(uuid.uuid4()), "session": str(uuid.uuid4()), "seq": 1, "events": events})


@pytest.mark.parametrize("event_type", [[], {}, 3, None, "nope"])
def test_unknown_or_unhashable_event_types_are_event_errors(event_type: object) -> None:
    with pytest.raises(EventError) as caught:
        decode_batch(_record([{"type": event_type, "time": 1.0}]))
    assert caught.value.reason == "bad_event_type"


def _scalars_v2(**fields: object) -> dict[str, object]:
    good = scalars_event("loss", "float", [0, 1], [1.0, 2.0], [0, 1], [0.5, math.nan])
    return {**good, **fields}


def test_version_1_and_version_2_decode_to_the_same_arrays() -> None:
    """Spools written before the packed format still publish (``runstream sync``)."""
    run, session = str(uuid.uuid4()), str(uuid.uuid4())
    v2 = decode_batch(
        encode_batch(Batch(run, session, 1, [scalars_event("n", "int", [3, 4], [1.0, 2.5], [0, 1], [-(2**63), 7])]))
    )
    v1 = decode_batch(
        orjson.dumps(
            {
                "v": 1,
                "run": run,
                "session": session,
                "seq": 1,
                "events": [
                    {
                        "type": "scalars",
                        "name": "n",
                        "kind": "int",
                        "steps": [3, 4],
                        "times": [1.0, 2.5],
                        "ordinals": [0, 1],
                        "values": [-(2**63), 7],
                    }
                ],
            }
        )
    )
    for a, b in zip(v1.events, v2.events, strict=True):
        for column in ("steps", "times", "ordinals", "values"):
            assert a[column].dtype == b[column].dtype
            assert a[column].tolist() == b[column].tolist()
    assert v2.events[0]["values"].tolist() == [-(2**63), 7]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"steps": [0, 1]}, "bad_shape"),  # a v1 list in a v2 record
        ({"times": "not base64!"}, "bad_shape"),
        ({"ordinals": base64.b64encode(b"\0" * 12).decode()}, "bad_shape"),  # not whole int64s
        ({"f64": base64.b64encode(b"\0" * 8).decode()}, "bad_shape"),  # one value for two points
        ({"kind": "complex"}, "bad_shape"),
    ],
)
def test_malformed_packed_columns_are_event_errors(fields: dict[str, object], reason: str) -> None:
    record = orjson.dumps(
        {"v": 2, "run": str(uuid.uuid4()), "session": str(uuid.uuid4()), "seq": 1, "events": [_scalars_v2(**fields)]}
    )
    with pytest.raises(EventError) as caught:
        decode_batch(record)
    assert caught.value.reason == reason


@pytest.mark.parametrize("version", [0, 3, "2", 2.0, None])
def test_unknown_versions_are_refused(version: object) -> None:
    record = orjson.dumps(
        {"v": version, "run": str(uuid.uuid4()), "session": str(uuid.uuid4()), "seq": 1, "events": []}
    )
    with pytest.raises(EventError) as caught:
        decode_batch(record)
    assert caught.value.reason == "bad_version"


def test_even_steps_and_ordinals_travel_as_progressions() -> None:
    event = scalars_event("loss", "float", range(10, 40, 10), [1.0, 2.0, 3.0], range(5, 8), [0.1, 0.2, 0.3])
    assert (event["steps"], event["ordinals"]) == ({"from": 10, "step": 10}, {"from": 5, "step": 1})
    batch = decode_batch(encode_batch(Batch(str(uuid.uuid4()), str(uuid.uuid4()), 1, [event])))
    assert batch.events[0]["steps"].tolist() == [10, 20, 30]
    assert batch.events[0]["ordinals"].tolist() == [5, 6, 7]


@pytest.mark.parametrize(
    ("steps", "reason"),
    [
        ({"from": 1}, "bad_shape"),
        ({"from": 1, "step": 1.5}, "bad_shape"),
        ({"from": 1, "step": 1, "extra": 0}, "bad_shape"),
        ({"from": 2**63 - 1, "step": 1}, "bad_value"),  # the second point overflows
    ],
)
def test_malformed_progressions_are_event_errors(steps: dict[str, object], reason: str) -> None:
    record = orjson.dumps(
        {"v": 2, "run": str(uuid.uuid4()), "session": str(uuid.uuid4()), "seq": 1, "events": [_scalars_v2(steps=steps)]}
    )
    with pytest.raises(EventError) as caught:
        decode_batch(record)
    assert caught.value.reason == reason


# --- one module for the format --------------------------------------------

#: One built event of each type, as the SDK would build it.
_SAMPLES = {
    "run_started": events.run_started_event(1.0, "exp", "a run", None),
    "status": events.status_event(2.0, "Completed"),
    "heartbeat": events.heartbeat_event(2.0),
    "scalars": scalars_event("loss", "float", [0, 1], [1.0, 2.0], [0, 1], [0.5, 0.25]),
    "list": events.list_event("l", 2.0, [1, "a", None]),
    "row": events.row_event("r", 2.0, {"epoch": 1, "acc": 0.5}),
    "table": events.table_event("t", 2.0, {"epoch": [1, 2], "acc": [0.5, 0.6]}),
    "image": events.image_event("i", 2.0, "images/i.png"),
    "tags": events.tags_event(2.0, {"k": "v", "flag": None}),
    "properties": events.properties_event(2.0, {"p": "1"}),
    "run_updated": events.run_updated_event(2.0, description="a note"),
}


def test_every_event_type_is_one_row_one_builder_and_one_documented_line() -> None:
    """Adding an event type touches runstream/events.py only: ingest decodes, checks and stores it from the table."""
    assert set(_SAMPLES) == set(events.EVENT_TYPES)
    lines = (events.__doc__ or "").splitlines()
    for kind, spec in events.EVENT_TYPES.items():
        assert f"{kind}_event" in events.__all__
        assert _SAMPLES[kind]["type"] == kind
        (documented,) = [line for line in lines if line.split()[:1] == [kind]]
        assert all(field in documented for field in spec.fields), documented
        assert kind in _APPLY  # the planner stores it (entries by the table's series and entry field)


def test_every_built_event_decodes_and_is_planned_without_a_dead_letter() -> None:
    run, session = str(uuid.uuid4()), str(uuid.uuid4())
    value = encode_batch(Batch(run, session, 1, list(_SAMPLES.values())))
    decoded = decode_record(Source("t", 0, 0, None, value))
    assert isinstance(decoded, Decoded), decoded
    plan = build_plan([decoded], {}, {}, {})
    assert plan.dead == [] and plan.points == 2 and plan.batches == 1
    assert {name for _, name in plan.series} == {"loss", "l", "r", "t", "i"}
    assert plan.run_updates[run].status == "Completed"


@pytest.mark.parametrize(
    ("have", "new", "kept"),
    [
        ("int", "float", "float"),
        ("float", "int", "float"),
        ("int", "int", "int"),
        ("int", "str", None),
        ("list", "row", None),
    ],
)
def test_the_one_widening_rule(have: str, new: str, kept: str | None) -> None:
    assert events.widened_kind(have, new) == kept
