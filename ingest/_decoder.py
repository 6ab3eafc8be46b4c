"""Records in, validated batches or dead letters out; never raises.

:func:`runstream.events.decode_batch` checks the wire format, every field of
every event type included. This module adds only the checks the database
needs, so that PostgreSQL refuses nothing that passes here and a bad record
costs one dead letter, not a bisected flush:

* finite times inside the timestamp range (the format itself guarantees
  64-bit steps, seqs and a bounded nesting depth);
* no NUL character in a string stored as ``text`` or ``jsonb`` (names, the
  experiment, the display name, str values, tags, properties, a status's
  error): PostgreSQL cannot hold one there. ``list``/``row``/``table`` values
  and image file names are stored as ``json``, which keeps ``\\u0000``;
* names PostgreSQL indexes (series and experiment names) within
  :data:`MAX_INDEXED_NAME_BYTES`: a btree entry must stay under ~2.7 KB.

Any exception while decoding makes the record a dead letter rather than
escaping: the format's own :class:`~runstream.events.EventError` with its
reason; anything else with a reason derived from the exception
(:func:`exception_letter`), ``ingest_error`` for one nobody foresaw. The
letter names the exception's type. Only a record too broken to name its
producer session lacks a :class:`~runstream.events.BatchHeader`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from runstream.events import EVENT_TYPES, Batch, BatchHeader, DecodedEvent, EventError, decode_batch

__all__ = ["MAX_INDEXED_NAME_BYTES", "DeadLetter", "Decoded", "Source", "decode_record", "exception_letter"]

# datetime's range, which timestamptz parameters go through.
_TIME_MIN: Final = -62135596800.0
_TIME_MAX: Final = 253402300799.0
#: Up to this many times, a scalars event's are checked one by one rather than by numpy reductions.
_FEW_POINTS: Final = 16
#: Longest series or experiment name (UTF-8 bytes) ingest stores. The SDK allows
#: 255 characters (at most 1,020 bytes); a btree index entry must fit in ~2.7 KB.
MAX_INDEXED_NAME_BYTES: Final = 1024
#: How a NUL looks in a record: JSON strings cannot hold a raw one, so a record
#: without this escape has no NUL anywhere, and most records skip the walk.
_NUL_ESCAPE: Final = b"\\u0000"
#: Exceptions a malformed shape trips in code that expected another (an unhashable
#: type, a missing key...): still the record's fault.
_SHAPE_ERRORS: Final = (TypeError, ValueError, KeyError, AttributeError, IndexError)
#: Reasons for exceptions whose cause is clear whoever raised them.
_KNOWN_CAUSES: Final = ((RecursionError, "too_deep"), (OverflowError, "bad_value"), (MemoryError, "too_large"))


@dataclass(frozen=True, slots=True)
class Source:
    """Where a record came from, its original bytes and when it was produced (epoch seconds, if known)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    produced_at: float | None = None


@dataclass(frozen=True, slots=True)
class Decoded:
    """A record that holds a valid batch; ``points`` counts its scalar points."""

    source: Source
    batch: Batch
    points: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that goes to the dead-letter topic, with why.

    ``header`` is the batch's run, session and seq when they could be read (the
    batch used up its seq all the same); ``exception`` the type of the
    exception that made it a dead letter, if one did.
    """

    source: Source
    reason: str
    message: str
    header: BatchHeader | None = None
    exception: str | None = None


def exception_letter(source: Source, exc: BaseException, header: BatchHeader | None, *, default: str) -> DeadLetter:
    """The dead letter of a record that made ingest's code raise ``exc``.

    RecursionError, OverflowError and MemoryError say what was wrong whoever
    raised them; other exceptions get ``default``.
    """
    reason = next((r for kind, r in _KNOWN_CAUSES if isinstance(exc, kind)), default)
    name = type(exc).__name__
    return DeadLetter(source, reason, f"{name}: {exc}"[:2000], header, name)


def decode_record(source: Source) -> Decoded | DeadLetter:
    """Decode and validate one record; whatever goes wrong makes it a dead letter."""
    batch: Batch | None = None
    try:
        batch = decode_batch(source.value)
        may_hold_nul = source.value is not None and _NUL_ESCAPE in source.value
        points = sum(_check(event, may_hold_nul) for event in batch.events)
    except EventError as exc:
        return DeadLetter(source, exc.reason, str(exc), exc.header or _header(batch), "EventError")
    except _SHAPE_ERRORS as exc:
        # The format's validator tripped over a shape it did not foresee (e.g.
        # an unhashable event type): still bad data, never a crash.
        return exception_letter(source, exc, _header(batch), default="bad_shape")
    except Exception as exc:  # noqa: BLE001 - no record may stop ingest: a bug here is this record's dead letter
        return exception_letter(source, exc, _header(batch), default="ingest_error")
    return Decoded(source, batch, points)


def _header(batch: Batch | None) -> BatchHeader | None:
    return None if batch is None else BatchHeader(batch.run_id, batch.session_id, batch.seq)


def _check(event: DecodedEvent, may_hold_nul: bool) -> int:
    """What the database needs beyond the format; return the point count."""
    kind = event["type"]
    if "name" in event:
        _check_name(kind, event["name"], may_hold_nul)
    if kind == "scalars":
        return _check_scalars(event, may_hold_nul)
    _check_time(kind, event["time"])
    if kind == "run_started" and len(event["experiment"].encode()) > MAX_INDEXED_NAME_BYTES:
        raise _fail(kind, f"experiment is longer than {MAX_INDEXED_NAME_BYTES} bytes", "bad_value")
    if may_hold_nul:
        for field in EVENT_TYPES[kind].text:
            _check_no_nul(kind, field, event.get(field))
    return 0


def _fail(kind: str, message: str, reason: str = "bad_shape") -> EventError:
    return EventError(reason, f"{kind} event: {message}")


def _check_time(kind: str, time: float) -> None:
    if not _TIME_MIN <= time <= _TIME_MAX:  # also false for NaN
        raise _fail(kind, f"time {time!r} is not a valid epoch time", "bad_value")


def _check_name(kind: str, name: str, may_hold_nul: bool) -> None:
    if len(name) * 4 > MAX_INDEXED_NAME_BYTES and len(name.encode()) > MAX_INDEXED_NAME_BYTES:
        raise _fail(kind, f"name {name[:40]!r}... is longer than {MAX_INDEXED_NAME_BYTES} bytes", "bad_value")
    if may_hold_nul and "\x00" in name:
        raise _fail(kind, f"name {name!r} contains NUL, which PostgreSQL cannot store", "bad_value")


def _check_no_nul(kind: str, field: str, value: Any) -> None:
    """Refuse a NUL anywhere in ``value`` (strings and object keys, at any depth)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise _fail(kind, f"{field} contains NUL, which PostgreSQL cannot store in text or jsonb", "bad_value")
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def _check_scalars(event: DecodedEvent, may_hold_nul: bool) -> int:
    times = event["times"]
    if not len(times):
        return 0
    if len(times) <= _FEW_POINTS:
        # With many live series most events hold a point or two: comparing Python floats costs a
        # tenth of two numpy reductions on a tiny array (which dominated decoding such records).
        valid = all(_TIME_MIN <= t <= _TIME_MAX for t in times.tolist())  # False for NaN
    else:
        # Two reductions, no per-point Python; a NaN makes min() NaN, which fails.
        valid = bool(times.min() >= _TIME_MIN and times.max() <= _TIME_MAX)
    if not valid:
        raise _fail("scalars", f"{event['name']!r}: a time is not a valid epoch time", "bad_value")
    if may_hold_nul and event["kind"] == "str" and "\x00" in "".join(event["values"]):
        raise _fail("scalars", f"{event['name']!r}: a str value contains NUL (PostgreSQL cannot store it)", "bad_value")
    return len(times)
