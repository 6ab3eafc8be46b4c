"""The event codec refuses malformed batches with EventError and a reason code."""

from __future__ import annotations

import base64
import math
import uuid

import orjson
import pytest

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
