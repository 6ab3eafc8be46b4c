"""Records in, validated batches or dead letters out; never raises on data.

:func:`runstream.events.decode_batch` checks the wire format. This module adds
the checks the database needs (finite times inside the timestamp range, the
field types of every event; the format itself guarantees 64-bit steps) so that a record that passes here can
only be refused by PostgreSQL for reasons of content the writer isolates (for
example a NUL character in a name).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Final

from runstream.events import Batch, Event, EventError, decode_batch

__all__ = ["DeadLetter", "Decoded", "Source", "decode_record"]

# datetime's range, which timestamptz parameters go through.
_TIME_MIN: Final = -62135596800.0
_TIME_MAX: Final = 253402300799.0


@dataclass(frozen=True, slots=True)
class Source:
    """Where a record came from, and its original bytes."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Decoded:
    """A record that holds a valid batch; ``points`` counts its scalar points."""

    source: Source
    batch: Batch
    points: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that goes to the dead-letter topic, with why."""

    source: Source
    reason: str
    message: str


def decode_record(source: Source) -> Decoded | DeadLetter:
    """Decode and validate one record."""
    try:
        batch = decode_batch(source.value)
        points = sum(_check(event) for event in batch.events)
    except EventError as exc:
        return DeadLetter(source, exc.reason, str(exc))
    except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as exc:
        # The format's validator tripped over a shape it did not foresee (e.g.
        # an unhashable event type): still bad data, never a crash.
        return DeadLetter(source, "bad_shape", f"malformed batch: {type(exc).__name__}: {exc}")
    return Decoded(source, batch, points)


def _check(event: Event) -> int:
    """Validate the fields decode_batch leaves unchecked; return the point count."""
    kind = event["type"]
    if kind == "scalars":
        return _check_scalars(event)
    _check_time(kind, event["time"])
    checker = _CHECKERS.get(kind)
    if checker is not None:
        checker(event)
    return 0


def _fail(kind: str, message: str, reason: str = "bad_shape") -> EventError:
    return EventError(reason, f"{kind} event: {message}")


def _check_time(kind: str, time: Any) -> None:
    if type(time) is not float and type(time) is not int:
        raise _fail(kind, f"time must be a number, got {type(time).__name__}")
    if not _TIME_MIN <= time <= _TIME_MAX:  # also false for NaN
        raise _fail(kind, f"time {time!r} is not a valid epoch time", "bad_value")


def _check_scalars(event: Event) -> int:
    times = event["times"]
    if not len(times):
        return 0
    # Two reductions, no per-point Python; a NaN makes min() NaN, which fails.
    if not (times.min() >= _TIME_MIN and times.max() <= _TIME_MAX):
        raise _fail("scalars", f"{event['name']!r}: a time is not a valid epoch time", "bad_value")
    return len(times)


def _is_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _check_run_started(event: Event) -> None:
    if not isinstance(event["experiment"], str) or not event["experiment"]:
        raise _fail("run_started", "experiment must be a non-empty string")
    if not isinstance(event.get("display_name"), str | None):
        raise _fail("run_started", "display_name must be a string or null")
    parent = event.get("parent")
    if parent is not None and not _is_uuid(parent):
        raise _fail("run_started", f"parent {parent!r} is not a run id", "bad_run_id")


def _check_status(event: Event) -> None:
    if not isinstance(event.get("error"), dict | None):
        raise _fail("status", "error must be an object or null")


def _check_list(event: Event) -> None:
    if not isinstance(event["values"], list):
        raise _fail("list", "values must be a list")


def _check_row(event: Event) -> None:
    if not isinstance(event["columns"], dict):
        raise _fail("row", "columns must be an object")


def _check_table(event: Event) -> None:
    columns = event["columns"]
    if not isinstance(columns, dict) or not all(isinstance(c, list) for c in columns.values()):
        raise _fail("table", "columns must be an object of lists")


def _check_image(event: Event) -> None:
    if not isinstance(event["file"], str) or not event["file"]:
        raise _fail("image", "file must be a non-empty string")


def _check_tags(event: Event) -> None:
    tags = event["tags"]
    if not isinstance(tags, dict) or not all(isinstance(v, str | None) for v in tags.values()):
        raise _fail("tags", "tags must map names to strings or null")


def _check_properties(event: Event) -> None:
    props = event["properties"]
    if not isinstance(props, dict) or not all(isinstance(v, str) for v in props.values()):
        raise _fail("properties", "properties must map names to strings")


_CHECKERS: Final = {
    "run_started": _check_run_started,
    "status": _check_status,
    "list": _check_list,
    "row": _check_row,
    "table": _check_table,
    "image": _check_image,
    "tags": _check_tags,
    "properties": _check_properties,
}
