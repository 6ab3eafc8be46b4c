"""The runstream event format: the one definition shared by the SDK and ingest.

A Kafka record on the events topic is one *batch*: the events one producer
session published for one run, keyed by the run id so that a run's batches stay
in order on one partition. The value is orjson-encoded::

    {"v": 2, "run": "<uuid>", "session": "<uuid>", "seq": 7, "events": [...]}

``session`` identifies one producer (one process logging to the run) and
``seq`` numbers its batches from 1 without gaps; ingest stores the highest
``seq`` per session with the points, so a resent batch (spool replay, retry,
``runstream sync``) is recognised and dropped.

Each event is an object with a ``type``; :data:`EVENT_TYPES` is this table in
code (fields, checks, the series an event adds to), and each type has one
builder, ``<type>_event(...)``:

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
run_updated        time, display_name, description (each optional: absent
                   leaves it as it is; at least one)
=================  ============================================================

``scalars`` carry the bulk of the traffic, so their columns travel packed:
``steps`` and ``ordinals`` as base64 of little-endian int64, or, when they
step evenly (ordinals always do, steps usually), as ``{"from": a, "step":
d}`` meaning ``a + d * i`` for each point ``i``; ``times`` as base64 of
little-endian IEEE-754 doubles; the values as ``"f64"`` (kind ``float``:
exact for NaN and ±Inf, which plain JSON cannot carry), ``"i64"`` (kind
``int``) or a JSON list ``"values"`` (kinds ``bool`` and ``str``). Ingest
turns them into numpy arrays without a per-point Python object.
Everywhere else a non-finite float is written as the object
``{"$float": "NaN" | "Infinity" | "-Infinity"}``.

Versions: 2 packs the columns as above. 1 (still accepted, because spools
written by older SDKs are published by ``runstream sync``) carried ``steps``,
``times`` and ``ordinals`` as JSON number lists and int values in ``"values"``.

An event has two forms, with two names: a :data:`WireEvent` is what a builder
returns and a record carries (JSON values, packed columns); a
:data:`DecodedEvent` is what :func:`decode_batch` returns once every format
check has passed (``scalars`` columns as numpy arrays, non-finite floats
restored). Ingest adds only what its database needs (timestamp range, no NUL
in text, indexed name lengths).

A series holds one kind of value; the only change allowed is
:func:`widened_kind`'s: int and float points together make a float series.

Times are seconds since the epoch (float). ``ordinals`` number a series' points
in logging order within the session, so points logged within the same clock
tick keep their order.

Limits beyond the shapes above: ``seq`` fits a signed 64-bit integer (PostgreSQL's
``bigint``), so do steps and ordinals, ``{"from": a, "step": d}`` included;
a record nests JSON at most :data:`MAX_NESTING` levels deep (orjson, which the
SDK encodes with, writes no deeper, and ingest re-encodes the values it stores).

Errors::

    EventError (ValueError)     -- a record that is not a valid batch; the
                                   message says why, ``reason`` is a short code,
                                   ``header`` the batch's run, session and seq
                                   when only its events are invalid
"""

from __future__ import annotations

import binascii
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import orjson
import pybase64

__all__ = [
    "CHANGED_RUNS_CHANNEL",
    "DESCRIPTION_PREFIX",
    "FORMAT_VERSION",
    "MAX_NESTING",
    "MAX_RECORD_BYTES",
    "STATUSES",
    "TERMINAL_STATUSES",
    "EVENT_TYPES",
    "Batch",
    "BatchHeader",
    "DecodedEvent",
    "Event",
    "EventError",
    "EventType",
    "WireEvent",
    "decode_batch",
    "decode_json_value",
    "encode_batch",
    "encode_json_value",
    "heartbeat_event",
    "image_event",
    "list_event",
    "properties_event",
    "row_event",
    "run_updated_event",
    "run_started_event",
    "scalars_event",
    "status_event",
    "table_event",
    "tags_event",
    "widened_kind",
]

FORMAT_VERSION: Final = 2
#: After storing events, ingest NOTIFYs this PostgreSQL channel with the ids
#: of the runs they changed (comma-separated), delivered at its COMMIT.
CHANGED_RUNS_CHANNEL: Final = "runstream_changed_runs"
_READABLE_VERSIONS: Final = frozenset({1, 2})
#: Larger records are refused by the SDK and dead-lettered by ingest.
MAX_RECORD_BYTES: Final = 8 * 1024 * 1024
#: The deepest nesting of arrays and objects a record may have: orjson.dumps refuses deeper
#: values, so no SDK writes one, and ingest could not re-encode what it stores.
MAX_NESTING: Final = 254
#: Records up to this size have their nesting bounded by counting brackets; larger ones by a walk.
_SCAN_NESTING_BYTES: Final = 64 * 1024

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
#: A series' description travels as the run property ``DESCRIPTION_PREFIX + name``
#: (the event format has no field for it; ingest keeps the first value of a property).
DESCRIPTION_PREFIX: Final = "runstream.description/"

ScalarKind: TypeAlias = Literal["float", "int", "bool", "str"]
Scalar: TypeAlias = float | int | bool | str
#: An event as built to be sent: JSON values, scalar columns packed (see the module docstring).
WireEvent: TypeAlias = dict[str, Any]
#: An event as :func:`decode_batch` returns it: checked, scalar columns as numpy arrays.
DecodedEvent: TypeAlias = dict[str, Any]
#: The decoded form's name in :mod:`runstream.contract`'s public surface (consumers only ever decode).
Event: TypeAlias = DecodedEvent
_KINDS: Final = frozenset({"float", "int", "bool", "str"})
_NONFINITE_NAMES: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_I64: Final = np.dtype("<i8")
_F64: Final = np.dtype("<f8")
#: The wire's packed columns of a scalars event (v2) and their element types.
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_PACKED_VALUES: Final[Mapping[str, tuple[str, np.dtype[Any]]]] = {"float": ("f64", _F64), "int": ("i64", _I64)}


class EventError(ValueError):
    """A record that is not a valid runstream batch.

    ``reason`` is a short machine-readable code (``not_json``, ``bad_version``,
    ``bad_shape``, ``bad_run_id``, ``too_large``, ``too_deep``, ...) that ingest
    writes to the dead-letter topic beside the message. ``header`` is set when
    the record's run, session and seq are valid and only its events are not:
    the batch still used up its seq (ingest counts it as seen).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.header: BatchHeader | None = None


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """Who sent a batch and which of its session's batches it is."""

    run_id: str
    session_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class Batch:
    """One producer session's events for one run, as carried by one record."""

    run_id: str
    session_id: str
    seq: int
    #: WireEvents to encode; DecodedEvents from decode_batch.
    events: list[dict[str, Any]]


def widened_kind(have: str, new: str) -> str | None:
    """The kind a series of kind ``have`` keeps once a ``new`` value joins it; None if it cannot take it.

    The one rule: a series keeps its kind, except that int and float points
    together make a float series. The SDK applies it to what one process logs,
    ingest to what is stored.
    """
    if have == new:
        return have
    if {have, new} == {"int", "float"}:
        return "float"
    return None


def metric_descriptions(properties: Mapping[str, Any] | None) -> dict[str, str]:
    """Each described metric's description, out of the run properties it travels as."""
    return {
        k.removeprefix(DESCRIPTION_PREFIX): str(v)
        for k, v in (properties or {}).items()
        if k.startswith(DESCRIPTION_PREFIX)
    }


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


def _pack(values: Sequence[Any], dtype: np.dtype[Any]) -> str:
    return pybase64.b64encode(np.asarray(values, dtype=dtype).tobytes()).decode("ascii")


def _pack_ints(values: Sequence[int]) -> str | dict[str, int]:
    if isinstance(values, range) and len(values) > 0:
        return {"from": values.start, "step": values.step}
    return _pack(values, _I64)


def _unpack_ints(event: WireEvent, field: str, n: int) -> npt.NDArray[np.int64]:
    """An int64 column: packed, or an even progression of ``n`` values."""
    spec = event.get(field)
    if not isinstance(spec, dict):
        return _unpack(event, field, _I64)
    start, step = spec.get("from"), spec.get("step")
    if type(start) is not int or type(step) is not int or len(spec) != 2:
        raise EventError("bad_shape", f"scalars {event['name']!r}: {field} must be {{'from': int, 'step': int}}")
    last = start + step * max(n - 1, 0)
    # The step itself too: numpy cannot hold it otherwise, even for a single point. (Chained
    # comparisons, not a generator: this runs for every column of every event.)
    if not (
        _INT64_MIN <= start <= _INT64_MAX and _INT64_MIN <= step <= _INT64_MAX and _INT64_MIN <= last <= _INT64_MAX
    ):
        raise EventError("bad_value", f"scalars {event['name']!r}: {field} leaves the 64-bit range")
    if n == 1:  # one point per series per batch is the common case with many live series: one small array
        return np.array([start], dtype=np.int64)
    # step * i may wrap for large i, but modulo 2**64 the sum is exact and, the
    # progression being monotonic between two int64 ends, it is the true value.
    return start + np.arange(n, dtype=np.int64) * np.int64(step)


def _unpack(event: WireEvent, field: str, dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    text = event.get(field)
    if not isinstance(text, str):
        raise EventError("bad_shape", f"scalars {event['name']!r}: {field} must be base64 of {dtype.name}")
    try:
        # pybase64 (SIMD): 40-60x binascii here, which was the largest cost of decoding a record.
        # validate=True refuses what binascii's strict mode does (non-alphabet, bad padding).
        raw = pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise EventError("bad_shape", f"scalars {event['name']!r}: {field} is not base64") from None
    if len(raw) % dtype.itemsize:
        raise EventError("bad_shape", f"scalars {event['name']!r}: {field} is not whole {dtype.name} values")
    array = np.frombuffer(raw, dtype=dtype)
    # Little-endian on the wire; only a big-endian host needs the copy into its own order.
    return array if dtype.isnative else array.astype(dtype.newbyteorder("="))


def scalars_event(
    name: str,
    kind: ScalarKind,
    steps: Sequence[int],
    times: Sequence[float],
    ordinals: Sequence[int],
    values: Sequence[Scalar],
) -> WireEvent:
    """Build a ``scalars`` event with its columns packed for ``kind``."""
    event: WireEvent = {
        "type": "scalars",
        "name": name,
        "kind": kind,
        "steps": _pack_ints(steps),
        "times": _pack(times, _F64),
        "ordinals": _pack_ints(ordinals),
    }
    packed = _PACKED_VALUES.get(kind)
    if packed is not None:
        event[packed[0]] = _pack(values, packed[1])
    else:
        event["values"] = list(values)
    return event


def run_started_event(time: float, experiment: str, display_name: str | None, parent: str | None) -> WireEvent:
    """A run begins: its experiment, display name and parent run (id or None)."""
    return {
        "type": "run_started",
        "time": time,
        "experiment": experiment,
        "display_name": display_name,
        "parent": parent,
    }


def status_event(time: float, status: str, error: Any = None) -> WireEvent:
    """The run's status changes (``error``: a JSON object, or None)."""
    return {"type": "status", "time": time, "status": status, "error": error}


def heartbeat_event(time: float) -> WireEvent:
    """The producer session is alive."""
    return {"type": "heartbeat", "time": time}


def list_event(name: str, time: float, values: list[Any]) -> WireEvent:
    """One list entry of the metric ``name`` (JSON values, non-finite floats encoded)."""
    return {"type": "list", "name": name, "time": time, "values": values}


def row_event(name: str, time: float, columns: dict[str, Any]) -> WireEvent:
    """One row of the table ``name``: ``{column: JSON value}``."""
    return {"type": "row", "name": name, "time": time, "columns": columns}


def table_event(name: str, time: float, columns: dict[str, list[Any]]) -> WireEvent:
    """A table of the metric ``name``: ``{column: [JSON values]}``."""
    return {"type": "table", "name": name, "time": time, "columns": columns}


def image_event(name: str, time: float, file: str) -> WireEvent:
    """An image of the metric ``name``, stored as the run's file ``file``."""
    return {"type": "image", "name": name, "time": time, "file": file}


def tags_event(time: float, tags: Mapping[str, str | None]) -> WireEvent:
    """Tags set on the run (a value may be None)."""
    return {"type": "tags", "time": time, "tags": dict(tags)}


def properties_event(time: float, properties: Mapping[str, str]) -> WireEvent:
    """Properties added to the run (ingest keeps each one's first value)."""
    return {"type": "properties", "time": time, "properties": dict(properties)}


def run_updated_event(time: float, *, display_name: str | None = None, description: str | None = None) -> WireEvent:
    """The run's display name or description changes (v1's setters); None leaves one as it is."""
    event: WireEvent = {"type": "run_updated", "time": time}
    if display_name is not None:
        event["display_name"] = display_name
    if description is not None:
        event["description"] = description
    return event


# --- the table of event types ---------------------------------------------


def _fail(kind: str, message: str, reason: str = "bad_shape") -> EventError:
    return EventError(reason, f"{kind} event: {message}")


def _is_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _check_run_started(event: DecodedEvent) -> None:
    experiment = event["experiment"]
    if not isinstance(experiment, str) or not experiment:
        raise _fail("run_started", "experiment must be a non-empty string")
    if not isinstance(event.get("display_name"), str | None):
        raise _fail("run_started", "display_name must be a string or null")
    parent = event.get("parent")
    if parent is not None and not _is_uuid(parent):
        raise _fail("run_started", f"parent {parent!r} is not a run id", "bad_run_id")


def _check_run_updated(event: DecodedEvent) -> None:
    given = [field for field in ("display_name", "description") if field in event]
    if not given:
        raise _fail("run_updated", "needs display_name or description")
    for field in given:
        if not isinstance(event[field], str):
            raise _fail("run_updated", f"{field} must be a string")


def _check_status(event: DecodedEvent) -> None:
    if event["status"] not in STATUSES:
        raise EventError("bad_status", f"unknown status {event['status']!r}")
    if not isinstance(event.get("error"), dict | None):
        raise _fail("status", "error must be an object or null")


def _check_list(event: DecodedEvent) -> None:
    event["values"] = decode_json_value(event["values"])
    if not isinstance(event["values"], list):
        raise _fail("list", "values must be a list")


def _check_row(event: DecodedEvent) -> None:
    event["columns"] = decode_json_value(event["columns"])
    if not isinstance(event["columns"], dict):
        raise _fail("row", "columns must be an object")


def _check_table(event: DecodedEvent) -> None:
    columns = event["columns"] = decode_json_value(event["columns"])
    if not isinstance(columns, dict) or not all(isinstance(c, list) for c in columns.values()):
        raise _fail("table", "columns must be an object of lists")


def _check_image(event: DecodedEvent) -> None:
    if not isinstance(event["file"], str) or not event["file"]:
        raise _fail("image", "file must be a non-empty string")


def _check_tags(event: DecodedEvent) -> None:
    tags = event["tags"]
    if not isinstance(tags, dict) or not all(isinstance(v, str | None) for v in tags.values()):
        raise _fail("tags", "tags must map names to strings or null")


def _check_properties(event: DecodedEvent) -> None:
    props = event["properties"]
    if not isinstance(props, dict) or not all(isinstance(v, str) for v in props.values()):
        raise _fail("properties", "properties must map names to strings")


@dataclass(frozen=True, slots=True)
class EventType:
    """One row of the format's table: what an event of this type holds and what it adds to.

    ``fields``: required beside ``type``; ``check``: the format check of a
    decoded event (it may decode its JSON values in place); ``series``: the
    kind of series its points or entry join (``scalar``, ``list``...; None: a
    run-level event); ``entry``: the field an entry stores as its value;
    ``text``: the fields a store keeps as text or JSON objects of strings.
    """

    fields: tuple[str, ...]
    check: Callable[[DecodedEvent], None] | None = None
    series: str | None = None
    entry: str | None = None
    text: tuple[str, ...] = ()


#: Every event type, its fields and checks: the format in one table (the builders are ``<type>_event``).
EVENT_TYPES: Final[Mapping[str, EventType]] = {
    "run_started": EventType(("time", "experiment"), _check_run_started, text=("experiment", "display_name")),
    "status": EventType(("time", "status"), _check_status, text=("error",)),
    "heartbeat": EventType(("time",)),
    "scalars": EventType(("name", "kind", "steps", "times", "ordinals"), series="scalar"),
    "list": EventType(("name", "time", "values"), _check_list, series="list", entry="values"),
    "row": EventType(("name", "time", "columns"), _check_row, series="row", entry="columns"),
    "table": EventType(("name", "time", "columns"), _check_table, series="table", entry="columns"),
    "image": EventType(("name", "time", "file"), _check_image, series="image", entry="file"),
    "tags": EventType(("time", "tags"), _check_tags, text=("tags",)),
    "properties": EventType(("time", "properties"), _check_properties, text=("properties",)),
    "run_updated": EventType(("time",), _check_run_updated, text=("display_name", "description")),
}


# --- batches --------------------------------------------------------------


def encode_batch(batch: Batch) -> bytes:
    """Serialise a batch into a record value."""
    return orjson.dumps(
        {
            "v": FORMAT_VERSION,
            "run": batch.run_id,
            "session": batch.session_id,
            "seq": batch.seq,
            "events": batch.events,
        }
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
    _check_nesting(data, doc)
    version = doc.get("v")
    if type(version) is not int or version not in _READABLE_VERSIONS:
        raise EventError("bad_version", f"unsupported format version {version!r}")
    run_id = _uuid_field(doc, "run", "bad_run_id")
    session_id = _uuid_field(doc, "session", "bad_session_id")
    seq = doc.get("seq")
    if type(seq) is not int or not 1 <= seq <= _INT64_MAX:
        raise EventError("bad_shape", f"seq must be a positive 64-bit integer, got {seq!r}")
    events = doc.get("events")
    if not isinstance(events, list):
        raise EventError("bad_shape", "events must be a list")
    try:
        return Batch(run_id, session_id, seq, [_check_event(e, version) for e in events])
    except EventError as exc:
        exc.header = BatchHeader(run_id, session_id, seq)
        raise


def _check_nesting(data: bytes, doc: Any) -> None:
    """Refuse a record nested deeper than MAX_NESTING (code that walks it would recurse that deep)."""
    if len(data) <= _SCAN_NESTING_BYTES:
        if data.count(b"[") + data.count(b"{") <= MAX_NESTING:
            return  # too few brackets to nest that deep: the usual case, at the cost of two scans in C
    elif _nests_within(doc, MAX_NESTING):
        # A large record is mostly base64 columns: walking its few objects costs far less than
        # scanning its bytes twice (which took 7% of ingest's time on the throughput figure).
        return
    try:
        orjson.dumps(doc)  # refuses exactly what is deeper than MAX_NESTING
    except orjson.JSONEncodeError as exc:
        raise EventError("too_deep", f"record nests more than {MAX_NESTING} levels deep ({exc})") from None


def _nests_within(doc: Any, limit: int) -> bool:
    """Whether no array or object in ``doc`` lies more than ``limit`` levels deep (``doc`` itself is level 1)."""
    pending = [(doc, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > limit:
            return False
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, dict | list):
                pending.append((child, depth + 1))
    return True


def _uuid_field(doc: Mapping[str, Any], key: str, reason: str) -> str:
    raw = doc.get(key)
    if not isinstance(raw, str):
        raise EventError(reason, f"{key} must be a UUID string, got {type(raw).__name__}")
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise EventError(reason, f"{key} {raw!r} is not a UUID") from None


def _check_event(event: Any, version: int) -> DecodedEvent:
    if not isinstance(event, dict):
        raise EventError("bad_shape", "event is not an object")
    kind = event.get("type")
    spec = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if spec is None:
        raise EventError("bad_event_type", f"unknown event type {kind!r}")
    missing = [f for f in spec.fields if f not in event]
    if missing:
        raise EventError("bad_shape", f"{kind} event lacks {', '.join(missing)}")
    if "name" in event and (not isinstance(event["name"], str) or not event["name"]):
        raise EventError("bad_shape", f"{kind} event has no valid name")
    if kind == "scalars":
        _check_scalars(event, version)
        return event
    time = event["time"]
    if type(time) is not float and type(time) is not int:
        raise _fail(str(kind), f"time must be a number, got {type(time).__name__}")
    if spec.check is not None:
        spec.check(event)
    return event


def _check_scalars(event: WireEvent, version: int) -> None:
    """Validate a scalars event and leave its columns as numpy arrays.

    ``steps`` and ``ordinals`` become int64, ``times`` float64, ``values``
    float64 (kind float), int64 (int), bool (bool) or a list of str (str).
    """
    kind = event["kind"]
    name = event["name"]
    if not isinstance(kind, str) or kind not in _KINDS:
        raise EventError("bad_shape", f"scalars {name!r} has unknown kind {kind!r}")
    if version == 1:
        _check_scalars_v1(event)
    else:
        event["times"] = _unpack(event, "times", _F64)
        for column in ("steps", "ordinals"):
            event[column] = _unpack_ints(event, column, len(event["times"]))
        packed = _PACKED_VALUES.get(kind)
        if packed is not None:
            event["values"] = _unpack(event, packed[0], packed[1])
            del event[packed[0]]
        else:
            _check_value_list(event, kind)
    if not len(event["steps"]) == len(event["times"]) == len(event["ordinals"]) == len(event["values"]):
        raise EventError("bad_shape", f"scalars {name!r}: columns differ in length")
    if kind == "bool":
        event["values"] = np.array(event["values"], dtype=np.bool_)


def _check_value_list(event: WireEvent, kind: str) -> None:
    values = event.get("values")
    if not isinstance(values, list):
        raise EventError("bad_shape", f"scalars {event['name']!r} lacks values")
    expected = {"int": int, "bool": bool, "str": str}.get(kind)
    if expected is not None and any(type(v) is not expected for v in values):
        raise EventError("bad_value", f"scalars {event['name']!r}: a value is not {kind}")


def _check_scalars_v1(event: DecodedEvent) -> None:
    """Version 1: number lists, checked per element, then the same arrays as v2."""
    kind, name = event["kind"], event["name"]
    if kind == "float":
        event["values"] = _unpack(event, "f64", _F64)
        del event["f64"]
    else:
        _check_value_list(event, kind)
    steps, times, ordinals = event["steps"], event["times"], event["ordinals"]
    if not (isinstance(steps, list) and isinstance(times, list) and isinstance(ordinals, list)):
        raise EventError("bad_shape", f"scalars {name!r}: steps, times and ordinals must be lists")
    if any(type(s) is not int for s in steps) or any(type(o) is not int for o in ordinals):
        raise EventError("bad_shape", f"scalars {name!r}: steps and ordinals must be integers")
    if any(type(t) is not float and type(t) is not int for t in times):
        raise EventError("bad_shape", f"scalars {name!r}: times must be numbers")
    try:
        event["steps"] = np.array(steps, dtype=np.int64)
        event["ordinals"] = np.array(ordinals, dtype=np.int64)
        if kind == "int":
            event["values"] = np.array(event["values"], dtype=np.int64)
    except OverflowError:
        raise EventError(
            "bad_value", f"scalars {name!r}: a step, ordinal or int value is outside 64-bit range"
        ) from None
    event["times"] = np.array(times, dtype=np.float64)
