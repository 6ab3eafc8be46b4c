"""The runstream event format: the one definition shared by the SDK and ingest.

A Kafka record on the events topic is one *batch*: the events one producer
session published for one run, keyed by the run id so that a run's batches stay
in order on one partition. The value is orjson-encoded::

    {"v": 1, "run": "<uuid>", "session": "<uuid>", "seq": 7, "events": [...]}

``session`` identifies one producer (one process logging to the run) and
``seq`` numbers its batches from 1 without gaps; ingest stores the highest
``seq`` per session with the points, so a resent batch (spool replay, retry,
``runstream sync``) is recognised and dropped.

Each event is an object with a ``type``:

=================  ============================================================
type               fields
=================  ============================================================
run_started        time, experiment, display_name, parent (run id or null)
status             time, status (see :data:`STATUSES`), error (object or null)
heartbeat          time
scalars            name, kind, steps, times, ordinals, values (see below)
list               name, time, values (a JSON value list)
row                name, time, columns ({column: JSON value})
table              name, time, columns ({column: [JSON values]})
image              name, time, file (the file's name in the run)
tags               time, tags ({key: str or null})
properties         time, properties ({key: str})
=================  ============================================================

Floats must round-trip exactly, NaN and ±Inf included, which plain JSON cannot
carry. ``scalars`` of kind ``float`` therefore carry their values as base64 of
little-endian IEEE-754 doubles (``"f64"``), which is also the fastest path for
the bulk of the traffic; kinds ``int``, ``bool`` and ``str`` carry a JSON list
(``"values"``). Everywhere else a non-finite float is written as the object
``{"$float": "NaN" | "Infinity" | "-Infinity"}``.

Times are seconds since the epoch (float). ``ordinals`` number a series' points
in logging order within the session, so points logged within the same clock
tick keep their order.

Errors::

    EventError (ValueError)     -- a record that is not a valid batch; the
                                   message says why, ``reason`` is a short code
"""

from __future__ import annotations

import base64
import math
import sys
import uuid
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias

import orjson

__all__ = [
    "FORMAT_VERSION",
    "MAX_RECORD_BYTES",
    "STATUSES",
    "TERMINAL_STATUSES",
    "Batch",
    "Event",
    "EventError",
    "decode_batch",
    "decode_json_value",
    "encode_batch",
    "encode_json_value",
]

FORMAT_VERSION: Final = 1
#: Larger records are refused by the SDK and dead-lettered by ingest.
MAX_RECORD_BYTES: Final = 8 * 1024 * 1024

STATUSES: Final = (
    "NotStarted",
    "Queued",
    "Starting",
    "Running",
    "Finalizing",
    "CancelRequested",
    "Completed",
    "Failed",
    "Canceled",
    "NotResponding",
)
TERMINAL_STATUSES: Final = frozenset({"Completed", "Failed", "Canceled"})

ScalarKind: TypeAlias = Literal["float", "int", "bool", "str"]
Scalar: TypeAlias = float | int | bool | str
Event: TypeAlias = dict[str, Any]
_KINDS: Final = frozenset({"float", "int", "bool", "str"})
_EVENT_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "run_started": ("time", "experiment"),
    "status": ("time", "status"),
    "heartbeat": ("time",),
    "scalars": ("name", "kind", "steps", "times", "ordinals"),
    "list": ("name", "time", "values"),
    "row": ("name", "time", "columns"),
    "table": ("name", "time", "columns"),
    "image": ("name", "time", "file"),
    "tags": ("time", "tags"),
    "properties": ("time", "properties"),
}
_NONFINITE_NAMES: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_LITTLE_ENDIAN: Final = sys.byteorder == "little"


class EventError(ValueError):
    """A record that is not a valid runstream batch.

    ``reason`` is a short machine-readable code (``not_json``, ``bad_version``,
    ``bad_shape``, ``bad_run_id``, ``too_large``, ...) that ingest writes to the
    dead-letter topic beside the message.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Batch:
    """One producer session's events for one run, as carried by one record."""

    run_id: str
    session_id: str
    seq: int
    events: list[Event]


# --- value encoding -------------------------------------------------------


def encode_json_value(value: Any) -> Any:
    """Make ``value`` JSON-safe, tagging non-finite floats so they survive."""
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")}
    if isinstance(value, list | tuple):
        return [encode_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: encode_json_value(v) for k, v in value.items()}
    return value


def decode_json_value(value: Any) -> Any:
    """Inverse of :func:`encode_json_value`."""
    if isinstance(value, dict):
        if len(value) == 1 and "$float" in value:
            name = value["$float"]
            if name not in _NONFINITE_NAMES:
                raise EventError("bad_value", f"unknown $float {name!r}")
            return _NONFINITE_NAMES[name]
        return {k: decode_json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_json_value(v) for v in value]
    return value


def pack_f64(values: Iterable[float]) -> str:
    """Base64 of little-endian doubles: exact for every float, NaN included."""
    packed = array("d", values)
    if not _LITTLE_ENDIAN:
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def unpack_f64(text: str) -> list[float]:
    """Inverse of :func:`pack_f64`."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        raise EventError("bad_value", "f64 is not base64") from None
    if len(raw) % 8:
        raise EventError("bad_value", "f64 length is not a multiple of 8")
    unpacked = array("d")
    unpacked.frombytes(raw)
    if not _LITTLE_ENDIAN:
        unpacked.byteswap()
    return unpacked.tolist()


def scalars_event(
    name: str,
    kind: ScalarKind,
    steps: Sequence[int],
    times: Sequence[float],
    ordinals: Sequence[int],
    values: Sequence[Scalar],
) -> Event:
    """Build a ``scalars`` event; the value column is encoded for ``kind``."""
    event: Event = {
        "type": "scalars",
        "name": name,
        "kind": kind,
        "steps": list(steps),
        "times": list(times),
        "ordinals": list(ordinals),
    }
    if kind == "float":
        event["f64"] = pack_f64(values)  # type: ignore[arg-type]
    else:
        event["values"] = list(values)
    return event


# --- batches --------------------------------------------------------------


def encode_batch(batch: Batch) -> bytes:
    """Serialise a batch into a record value."""
    return orjson.dumps(
        {"v": FORMAT_VERSION, "run": batch.run_id, "session": batch.session_id, "seq": batch.seq, "events": batch.events}
    )


def decode_batch(data: bytes | None) -> Batch:
    """Parse and validate a record value; raises :class:`EventError`.

    ``scalars`` events come back with a ``values`` list whatever the wire
    encoding, and every JSON value has its non-finite floats restored.
    """
    if data is None:
        raise EventError("empty", "record has no value")
    if len(data) > MAX_RECORD_BYTES:
        raise EventError("too_large", f"record of {len(data)} bytes exceeds {MAX_RECORD_BYTES}")
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise EventError("not_json", str(exc)) from None
    if not isinstance(doc, dict):
        raise EventError("bad_shape", "record is not a JSON object")
    version = doc.get("v")
    if version != FORMAT_VERSION:
        raise EventError("bad_version", f"unsupported format version {version!r}")
    run_id = _uuid_field(doc, "run", "bad_run_id")
    session_id = _uuid_field(doc, "session", "bad_session_id")
    seq = doc.get("seq")
    if type(seq) is not int or seq < 1:
        raise EventError("bad_shape", f"seq must be a positive integer, got {seq!r}")
    events = doc.get("events")
    if not isinstance(events, list):
        raise EventError("bad_shape", "events must be a list")
    return Batch(run_id, session_id, seq, [_check_event(e) for e in events])


def _uuid_field(doc: Mapping[str, Any], key: str, reason: str) -> str:
    raw = doc.get(key)
    if not isinstance(raw, str):
        raise EventError(reason, f"{key} must be a UUID string, got {type(raw).__name__}")
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise EventError(reason, f"{key} {raw!r} is not a UUID") from None


def _check_event(event: Any) -> Event:
    if not isinstance(event, dict):
        raise EventError("bad_shape", "event is not an object")
    kind = event.get("type")
    required = _EVENT_FIELDS.get(kind) if isinstance(kind, str) else None
    if required is None:
        raise EventError("bad_event_type", f"unknown event type {kind!r}")
    missing = [f for f in required if f not in event]
    if missing:
        raise EventError("bad_shape", f"{kind} event lacks {', '.join(missing)}")
    if "name" in event and (not isinstance(event["name"], str) or not event["name"]):
        raise EventError("bad_shape", f"{kind} event has no valid name")
    if kind == "scalars":
        _check_scalars(event)
    elif kind == "status":
        if event["status"] not in STATUSES:
            raise EventError("bad_status", f"unknown status {event['status']!r}")
    elif kind in ("list", "row", "table"):
        event["values" if kind == "list" else "columns"] = decode_json_value(
            event["values" if kind == "list" else "columns"]
        )
    return event


def _check_scalars(event: Event) -> None:
    kind = event["kind"]
    if kind not in _KINDS:
        raise EventError("bad_shape", f"scalars {event['name']!r} has unknown kind {kind!r}")
    if kind == "float":
        if not isinstance(event.get("f64"), str):
            raise EventError("bad_shape", f"scalars {event['name']!r} of kind float lacks f64")
        event["values"] = unpack_f64(event.pop("f64"))
    elif not isinstance(event.get("values"), list):
        raise EventError("bad_shape", f"scalars {event['name']!r} lacks values")
    steps, times, ordinals, values = event["steps"], event["times"], event["ordinals"], event["values"]
    if not (isinstance(steps, list) and isinstance(times, list) and isinstance(ordinals, list)):
        raise EventError("bad_shape", f"scalars {event['name']!r}: steps, times and ordinals must be lists")
    if not len(steps) == len(times) == len(ordinals) == len(values):
        raise EventError("bad_shape", f"scalars {event['name']!r}: columns differ in length")
    expected = {"int": int, "bool": bool, "str": str}.get(kind)
    if expected is not None and any(type(v) is not expected for v in values):
        raise EventError("bad_value", f"scalars {event['name']!r}: a value is not {kind}")
    if any(type(s) is not int for s in steps) or any(type(o) is not int for o in ordinals):
        raise EventError("bad_shape", f"scalars {event['name']!r}: steps and ordinals must be integers")
    if any(type(t) is not float and type(t) is not int for t in times):
        raise EventError("bad_shape", f"scalars {event['name']!r}: times must be numbers")
