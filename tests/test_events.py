"""The event codec refuses malformed batches with EventError and a reason code."""

from __future__ import annotations

import uuid

import orjson
import pytest

from runstream.events import EventError, decode_batch


def _record(events: list[object]) -> bytes:
    return orjson.dumps({"v": 1, "run": str(uuid.uuid4()), "session": str(uuid.uuid4()), "seq": 1, "events": events})


@pytest.mark.parametrize("event_type", [[], {}, 3, None, "nope"])
def test_unknown_or_unhashable_event_types_are_event_errors(event_type: object) -> None:
    with pytest.raises(EventError) as caught:
        decode_batch(_record([{"type": event_type, "time": 1.0}]))
    assert caught.value.reason == "bad_event_type"
