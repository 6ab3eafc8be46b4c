"""The OpenAPI 3 description of the JSON API, served at ``/api/openapi.json``.

Written by hand next to the handlers; a test checks that every route the app
serves is described here and every described route is served. Every limit is
read from :mod:`._limits`, which the handlers read too; the query parameters
listed per operation are the ones the service takes (:mod:`._params` refuses
any other).
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from runstream.consistency import (
    INGEST_BEHIND,
    MAX_READ_AFTER_SESSIONS,
    MAX_READ_WAIT_SECONDS,
    PREFER_HEADER,
    READ_AFTER_HEADER,
)
from runstream.events import STATUSES
from runstream.names import HIDDEN_CHARACTERS

from ._follow import FOLLOW_STARTS, MAX_FOLLOW_CURSOR_CHARS
from ._json import json_response
from ._limits import (
    DEFAULT_LOG_READ_BYTES,
    DEFAULT_RUNS_LIMIT,
    DEFAULT_SERIES_LIMIT,
    MAX_CURSOR_CHARS,
    MAX_FILE_NAME_CHARS,
    MAX_LOG_OFFSET,
    MAX_LOG_READ_BYTES,
    MAX_MAX_POINTS,
    MAX_METRIC_NAME_CHARS,
    MAX_RESPONSE_POINTS,
    MAX_RUN_NAME_CHARS,
    MAX_RUNS_LIMIT,
    MAX_SERIES_LIMIT,
    MAX_SERIES_RUNS,
    MIN_LOG_READ_BYTES,
    MIN_MAX_POINTS,
)
from ._series import X_AXES

__all__ = ["SPEC", "routes"]

routes = web.RouteTableDef()


def _param(name: str, where: str, schema: dict[str, Any], description: str, required: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "schema": schema,
        "description": description,
    }


_RUN_ID = _param("run_id", "path", {"type": "string", "format": "uuid"}, "The run's id")
# What _validate accepts, so that generated valid input is valid: no control
# characters (metric names), and for files none of runstream.names' hidden
# characters nor backslashes, in relative '/'-separated segments that are
# neither empty, '.' nor '..'.
_CONTROL: Final = r"\x00-\x1f\x7f"
_NOT: Final = HIDDEN_CHARACTERS + r"\\"  # inside [^...]: hidden characters and the backslash
_SEGMENT: Final = rf"(?:[^/.{_NOT}][^/{_NOT}]*|\.[^/.{_NOT}][^/{_NOT}]*|\.\.[^/{_NOT}]+)"
_FILE_NAME = _param(
    "name",
    "path",
    {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_FILE_NAME_CHARS,
        "pattern": f"^{_SEGMENT}(?:/{_SEGMENT})*$",
    },
    "File name in the run; '/' separates folders. No control, bidirectional or zero-width characters",
)
_METRIC = _param(
    "name",
    "query",
    {"type": "string", "minLength": 1, "maxLength": MAX_METRIC_NAME_CHARS, "pattern": rf"^[^{_CONTROL}]+$"},
    "Metric name",
    required=True,
)
_CURSOR = _param(
    "cursor", "query", {"type": "string", "maxLength": MAX_CURSOR_CHARS}, "next_cursor of the previous page"
)
_RANGE = [
    _param("start_step", "query", {"type": "integer"}, "Lowest step (inclusive)"),
    _param("end_step", "query", {"type": "integer"}, "Highest step (inclusive)"),
    _param("start_time", "query", {"type": "number"}, "Earliest time, epoch seconds (inclusive)"),
    _param("end_time", "query", {"type": "number"}, "Latest time, epoch seconds (inclusive)"),
    _param(
        "max_points",
        "query",
        {"type": "integer", "minimum": MIN_MAX_POINTS, "maximum": MAX_MAX_POINTS},
        "Downsample to at most this many points per run (and at least 90% of it when the range holds more): "
        "M4, each bucket's first, last, lowest and highest point, over equal buckets of x_axis",
    ),
    _param(
        "x_axis",
        "query",
        {"type": "string", "enum": list(X_AXES), "default": "step"},
        "The axis downsampling buckets span: steps, or times (for wall-clock or relative-time charts)",
    ),
    _param(
        "limit",
        "query",
        {"type": "integer", "minimum": 1, "maximum": MAX_SERIES_LIMIT, "default": DEFAULT_SERIES_LIMIT},
        "Page size at full resolution, per run",
    ),
    _CURSOR,
]
_FORMAT = _param(
    "format",
    "query",
    {"type": "string", "enum": ["json", "csv"]},
    "csv: text/csv, one row per item, floats exact (repr), non-finite ones as NaN, Infinity, -Infinity; "
    "without it, an Accept header naming text/csv picks CSV too",
)
_RANGE.append(_FORMAT)


def _ok(schema: dict[str, Any], description: str = "OK", status: str = "200") -> dict[str, Any]:
    return {status: {"description": description, "content": {"application/json": {"schema": schema}}}}


def _ok_or_csv(schema: dict[str, Any]) -> dict[str, Any]:
    """JSON, or CSV with format=csv (or Accept: text/csv)."""
    ok = _ok(schema)
    ok["200"]["content"]["text/csv"] = {"schema": {"type": "string"}}
    return ok


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


_ERRORS: Final = {
    str(status): _error(text)
    for status, text in (
        (400, "Bad input"),
        (401, "Missing or wrong token"),
        (
            403,
            "Refused: a read token used for a write; without a read token, a Host that is not local"
            " (host_not_allowed); a write from another site's page (cross_origin)",
        ),
        (404, "Not found"),
    )
}
_TOO_LARGE: Final = _error("Over the size limit")
_SLOW_BODY: Final = _error("The body did not arrive in time (RUNSTREAM_BODY_TIMEOUT_SECONDS)")
_TOO_MANY_POINTS: Final = {
    "413": _error(
        f"The answer would hold more than {MAX_RESPONSE_POINTS} points (runs x points, by the points stored);"
        " checked before anything is read"
    ),
    "503": _error("Busy with other reads of many points; retry after Retry-After seconds"),
}
_NULLABLE_TIME: Final = {"type": "string", "format": "date-time", "nullable": True}
_SERIES_COLUMNS: Final = {
    "type": "object",
    "properties": {
        "value_type": {"type": "string", "nullable": True, "enum": ["float", "int", "bool", "str", None]},
        "steps": {"type": "array", "items": {"type": "integer"}},
        "times": {"type": "array", "items": {"type": "number"}},
        "values": {"type": "array", "items": {}},
        "downsampled": {"type": "boolean"},
        "buckets": {
            "type": "object",
            "nullable": True,
            "description": "When downsampled: bucket k holds start + k*width <= x < start + (k+1)*width",
            "properties": {
                "x_axis": {"type": "string", "enum": list(X_AXES)},
                "start": {"type": "number"},
                "width": {"type": "number"},
                "filled": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Points beyond the buckets' M4 points, added where no grid of buckets keeps "
                    "90% of max_points (tiny max_points, or points crowded into a sliver of the axis)",
                },
            },
        },
        "next_cursor": {"type": "string", "nullable": True},
    },
}

# Every read takes a read-after token (query._consistency's middleware). The two
# headers are described once, in components.parameters, like the bearer token in
# securitySchemes, rather than in every operation: a client generated from the
# document, or a fuzzer, must not send a token it did not earn, which waits.
_HEX: Final = "[0-9a-fA-F]"
_PAIR: Final = rf"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}:[1-9][0-9]{{0,17}}"
_READ_AFTER: Final = {
    "ReadAfter": _param(
        READ_AFTER_HEADER,
        "header",
        {"type": "string", "pattern": rf"^{_PAIR}(,{_PAIR}){{0,{MAX_READ_AFTER_SESSIONS - 1}}}$"},
        f"Read-your-writes: 'session:seq' pairs (at most {MAX_READ_AFTER_SESSIONS}, comma-separated). The "
        "answer waits until ingest has stored each producer session up to its seq, so it holds everything "
        "those records carried.",
    ),
    "Prefer": _param(
        PREFER_HEADER,
        "header",
        {"type": "string", "example": "wait=12.5"},
        f"With {READ_AFTER_HEADER}: wait=<seconds> (fractions allowed) bounds the wait; at most and by default "
        f"{MAX_READ_WAIT_SECONDS:g}.",
    ),
}
_INGEST_BEHIND: Final = {
    "description": (
        f"With {READ_AFTER_HEADER}: the wait ran out (error code {INGEST_BEHIND!r}); 'lag' names each session "
        "still behind"
    ),
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IngestBehind"}}},
}

SPEC: Final[dict[str, Any]] = {
    "openapi": "3.0.3",
    "info": {
        "title": "runstream query service",
        "version": "1",
        "description": (
            "Runs, metrics and files of ML training runs. Non-finite floats in any JSON value are "
            'written as {"$float": "NaN" | "Infinity" | "-Infinity"}. When the service has a token, '
            "every path but /health needs 'Authorization: Bearer <token>'. Read-your-writes: every GET under "
            f"/api/ takes the headers {READ_AFTER_HEADER} and {PREFER_HEADER} (components.parameters ReadAfter "
            "and Prefer): the answer waits until ingest has stored what the token names, or is 503 "
            f"{INGEST_BEHIND} when the wait runs out."
        ),
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "parameters": _READ_AFTER,
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message", "parameter"],
                        "properties": {
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                            "parameter": {"type": "string", "nullable": True},
                        },
                    }
                },
            },
            "IngestBehind": {
                "allOf": [
                    _ref("Error"),
                    {
                        "type": "object",
                        "required": ["lag"],
                        "properties": {
                            "lag": {
                                "type": "object",
                                "properties": {
                                    "waited_seconds": {"type": "number"},
                                    "sessions": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "session": {"type": "string", "format": "uuid"},
                                                "stored_seq": {"type": "integer"},
                                                "required_seq": {"type": "integer"},
                                            },
                                        },
                                    },
                                },
                            }
                        },
                    },
                ]
            },
            "Run": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "format": "uuid"},
                    "experiment": {"type": "string"},
                    "display_name": {"type": "string", "nullable": True},
                    "description": {"type": "string", "nullable": True},
                    "parent_id": {"type": "string", "format": "uuid", "nullable": True},
                    "status": {"type": "string"},
                    "created_at": {"type": "string", "format": "date-time"},
                    "started_at": _NULLABLE_TIME,
                    "ended_at": _NULLABLE_TIME,
                    "heartbeat_at": _NULLABLE_TIME,
                    "error": {"type": "object", "nullable": True},
                    "tags": {"type": "object", "additionalProperties": {"type": "string", "nullable": True}},
                    "properties": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
            "File": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "size": {"type": "integer"},
                    "digest": {"type": "string", "description": "sha256 of the content, hex"},
                    "content_type": {"type": "string"},
                    "created_at": {"type": "string", "format": "date-time"},
                },
            },
            "SeriesColumns": _SERIES_COLUMNS,
            "AlertRules": {
                "type": "object",
                "properties": {"rules": {"type": "array", "items": {"type": "object"}}},
            },
            "DriverLog": {
                "type": "object",
                "properties": {
                    "offset": {"type": "integer"},
                    "next_offset": {"type": "integer", "description": "where the next read starts"},
                    "size": {"type": "integer", "description": "bytes of the log stored so far"},
                    "status": {"type": "string", "nullable": True, "description": "null until the run is ingested"},
                    "terminal": {"type": "boolean", "description": "the run has ended: size is final"},
                    "done": {"type": "boolean", "description": "terminal and read to the end: stop reading"},
                    "text": {"type": "string"},
                },
            },
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/health": {
            "get": {"summary": "Liveness", "security": [], "responses": _ok({"type": "object"})},
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {**_ok({"type": "object"}), "401": _ERRORS["401"], "403": _ERRORS["403"]},
            }
        },
        "/api/read-after": {
            "get": {
                "summary": f"Wait until ingest has stored what {READ_AFTER_HEADER} names; answer the stored seqs",
                "description": (
                    "The read-after token alone, for a reader whose token needs more than one request: send "
                    f"{MAX_READ_AFTER_SESSIONS} sessions at a time (header {READ_AFTER_HEADER}, with {PREFER_HEADER}: "
                    "see components.parameters), then the read itself with the rest. Without the header there is "
                    "nothing to wait for: sessions is empty."
                ),
                "responses": {
                    **_ok(
                        {
                            "type": "object",
                            "properties": {"sessions": {"type": "object", "additionalProperties": {"type": "integer"}}},
                        }
                    ),
                    "400": _ERRORS["400"],
                    "401": _ERRORS["401"],
                },
            }
        },
        "/api/experiments": {
            "get": {
                "summary": "Experiments with run counts and last activity, most recently active first",
                "responses": {
                    **_ok({"type": "object", "properties": {"experiments": {"type": "array", "items": {}}}}),
                    "401": _ERRORS["401"],
                    "403": _ERRORS["403"],
                },
            }
        },
        "/api/runs": {
            "get": {
                "summary": "Runs, newest first, in keyset pages",
                "parameters": [
                    _param("experiment", "query", {"type": "string", "minLength": 1}, "Only this experiment's runs"),
                    _param("status", "query", {"type": "string", "enum": list(STATUSES)}, "Only runs in this status"),
                    _param(
                        "name",
                        "query",
                        {"type": "string", "minLength": 1, "maxLength": MAX_RUN_NAME_CHARS},
                        "Only runs whose display name contains this text (ignoring case; no wildcards)",
                    ),
                    _param(
                        "tag",
                        "query",
                        {"type": "array", "items": {"type": "string"}},
                        "key:value (that value) or key (present); repeat to combine",
                    ),
                    _param(
                        "property",
                        "query",
                        {"type": "array", "items": {"type": "string"}},
                        "key:value (that value) or key (present); repeat to combine",
                    ),
                    _param("parent", "query", {"type": "string", "format": "uuid"}, "Only children of this run"),
                    _param("top_level", "query", {"type": "boolean", "default": False}, "Only runs without a parent"),
                    _param("include", "query", {"type": "string", "enum": ["metrics"]}, "Add latest scalar values"),
                    _param(
                        "where",
                        "query",
                        {"type": "array", "items": {"type": "string"}},
                        "Metric condition, e.g. accuracy>0.9 or max(loss)<=2; repeat to combine",
                    ),
                    _param(
                        "sort",
                        "query",
                        {"type": "string"},
                        "[-]created_at (default -created_at) or [-]last|min|max(metric)",
                    ),
                    _param("started_after", "query", {"type": "string", "format": "date-time"}, "created at or after"),
                    _param(
                        "started_before", "query", {"type": "string", "format": "date-time"}, "created at or before"
                    ),
                    _param(
                        "limit",
                        "query",
                        {"type": "integer", "minimum": 1, "maximum": MAX_RUNS_LIMIT, "default": DEFAULT_RUNS_LIMIT},
                        "Page size",
                    ),
                    _CURSOR,
                    _FORMAT,
                ],
                "responses": {
                    **_ok_or_csv(
                        {
                            "type": "object",
                            "properties": {
                                "runs": {"type": "array", "items": _ref("Run")},
                                "next_cursor": {"type": "string", "nullable": True},
                            },
                        }
                    ),
                    "400": _ERRORS["400"],
                    "401": _ERRORS["401"],
                    "403": _ERRORS["403"],
                },
            }
        },
        "/api/runs/{run_id}": {
            "get": {
                "summary": "One run's status and details",
                "parameters": [_RUN_ID],
                "responses": {**_ok(_ref("Run")), **_ERRORS},
            }
        },
        "/api/runs/{run_id}/metrics": {
            "get": {
                "summary": "Azure ML v1 get_metrics(): {name: value | [values] | {column: ...}}",
                "description": (
                    "A scalar logged once is the bare value, N times a list in logging order; log_list once is the "
                    "list, N times a list of lists; log_row/log_table a dict of columns ({col: value} for exactly "
                    "one row, {col: [...]} otherwise, None where a row lacks the column); log_image the file name."
                ),
                "parameters": [
                    _RUN_ID,
                    {**_METRIC, "required": False},
                    _param("recursive", "query", {"type": "boolean"}, "{run_id: metrics} for the run and descendants"),
                ],
                "responses": {**_ok({"type": "object"}), **_ERRORS, **_TOO_MANY_POINTS},
            }
        },
        "/api/runs/{run_id}/series": {
            "get": {
                "summary": "One scalar metric as columns, by range, paged or downsampled (M4 per bucket of x_axis)",
                "parameters": [_RUN_ID, _METRIC, *_RANGE],
                "responses": {**_ok_or_csv(_ref("SeriesColumns")), **_ERRORS, **_TOO_MANY_POINTS},
            }
        },
        "/api/series": {
            "get": {
                "summary": "One scalar metric from several runs, for one chart",
                "parameters": [
                    _param(
                        "run",
                        "query",
                        {"type": "array", "items": {"type": "string", "format": "uuid"}, "maxItems": MAX_SERIES_RUNS},
                        "Run ids (repeat the parameter)",
                        required=True,
                    ),
                    _METRIC,
                    *[p for p in _RANGE if p["name"] != "cursor"],
                ],
                "responses": {
                    **_ok_or_csv({"type": "object"}),
                    "400": _ERRORS["400"],
                    "401": _ERRORS["401"],
                    "403": _ERRORS["403"],
                    **_TOO_MANY_POINTS,
                },
            }
        },
        "/api/runs/{run_id}/stream": {
            "get": {
                "summary": (
                    "Server-Sent Events: 'run' (details with the metrics' descriptions, on connect and on change), "
                    "'points' (new points)"
                ),
                "parameters": [_RUN_ID],
                "responses": {
                    "200": {
                        "description": "An event stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **_ERRORS,
                },
            }
        },
        "/api/stream": {
            "get": {
                "summary": "Server-Sent Events: 'runs' with an experiment's runs whose status or end changed",
                "parameters": [
                    _param("experiment", "query", {"type": "string", "minLength": 1}, "Experiment name", required=True)
                ],
                "responses": {
                    "200": {
                        "description": "An event stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **_ERRORS,
                },
            }
        },
        "/api/changes/stream": {
            "get": {
                "summary": (
                    "Server-Sent Events, resumable: 'ready', then 'run' (a matching run's details, when first seen "
                    "and on change) and 'points' (points as stored); each event's id is the cursor after it"
                ),
                "description": (
                    "Give experiment or run (or both). A client reconnecting with the last id it received "
                    "(Last-Event-ID, or cursor) gets every point stored since, once (runstream.stream)."
                ),
                "parameters": [
                    _param("experiment", "query", {"type": "string", "minLength": 1}, "Experiment name"),
                    _param("run", "query", {"type": "array", "items": {"type": "string", "format": "uuid"}}, "Run ids"),
                    _param(
                        "metric",
                        "query",
                        {"type": "array", "items": {"type": "string", "minLength": 1}},
                        "Metric names or globs (* ? [abc] [!abc]); any of them",
                    ),
                    _param(
                        "tag",
                        "query",
                        {"type": "array", "items": {"type": "string", "minLength": 1}},
                        "key (set) or key:value; all of them",
                    ),
                    _param(
                        "from",
                        "query",
                        {"type": "string", "enum": list(FOLLOW_STARTS), "default": "now"},
                        "Without a cursor: start at the stored end (now) or from the first point (start)",
                    ),
                    _param(
                        "cursor",
                        "query",
                        {"type": "string", "maxLength": MAX_FOLLOW_CURSOR_CHARS},
                        "The id of the last event received",
                    ),
                ],
                "responses": {
                    "200": {
                        "description": "An event stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **_ERRORS,
                },
            }
        },
        "/api/alerts": {
            "get": {
                "summary": "Alert rules, with what each did (fired, last_fired_at, last_error); no webhook secrets",
                "responses": {**_ok(_ref("AlertRules")), "401": _ERRORS["401"], "403": _ERRORS["403"]},
            },
            "post": {
                "summary": "Add an alert rule (a write: the write token when one is set)",
                "description": (
                    "kind nonfinite | threshold (op, threshold) | plateau (steps, delta, mode min|max) | "
                    "not_responding; experiment and/or run_id; metric (a name or glob) but for not_responding; "
                    "actions: webhook {url, secret} (a JSON POST signed with HMAC-SHA256, header "
                    "Runstream-Signature: sha256=<hex>, retried), tag {key, value}, cancel true (the run becomes "
                    "CancelRequested, which run.should_stop() reports). Fires once per episode of its condition."
                ),
                "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {**_ok({"type": "object"}, "Added", "201"), **_ERRORS, "413": _TOO_LARGE},
            },
        },
        "/api/alerts/{rule_id}": {
            "delete": {
                "summary": "Delete an alert rule (a write)",
                "parameters": [_param("rule_id", "path", {"type": "integer", "minimum": 1}, "The rule's id")],
                "responses": {**_ok({"type": "object"}), **_ERRORS},
            }
        },
        "/api/runs/{run_id}/logs/driver": {
            "get": {
                "summary": "The driver log of a submitted run as text, from a byte offset",
                "description": (
                    "Returns at most `limit` bytes from `offset`, decoded as UTF-8 (a character cut at the end is "
                    "left for the next read; invalid bytes become U+FFFD). Read again from `next_offset` while "
                    "`next_offset` < `size`; once `done` (the run is terminal and everything is read) nothing more "
                    "will come. An offset beyond `size` is 400; a run with no log yet has `size` 0."
                ),
                "parameters": [
                    _RUN_ID,
                    _param(
                        "offset",
                        "query",
                        {"type": "integer", "minimum": 0, "maximum": MAX_LOG_OFFSET, "default": 0},
                        "Byte offset",
                    ),
                    _param(
                        "limit",
                        "query",
                        {
                            "type": "integer",
                            "minimum": MIN_LOG_READ_BYTES,
                            "maximum": MAX_LOG_READ_BYTES,
                            "default": DEFAULT_LOG_READ_BYTES,
                        },
                        "At most this many bytes",
                    ),
                ],
                "responses": {**_ok(_ref("DriverLog")), **_ERRORS},
            },
            "put": {
                "summary": "Append to the driver log (what the SDK does while the script runs)",
                "description": (
                    "`offset` must be the log's current size; repeating an earlier append (same offset, same bytes) "
                    "is a no-op, so a lost answer can be retried. Any other offset is 409 offset_mismatch."
                ),
                "parameters": [
                    _RUN_ID,
                    _param(
                        "offset",
                        "query",
                        {"type": "integer", "minimum": 0, "maximum": MAX_LOG_OFFSET},
                        "The log's size",
                        required=True,
                    ),
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                },
                "responses": {
                    **_ok(
                        {
                            "type": "object",
                            "properties": {"offset": {"type": "integer"}, "next_offset": {"type": "integer"}},
                        },
                        "Appended",
                        "201",
                    ),
                    **_ERRORS,
                    "409": {
                        "description": "offset is not the log's end, or repeats an append with other bytes",
                        "content": {"application/json": {"schema": _ref("Error")}},
                    },
                    "408": _SLOW_BODY,
                    "413": _TOO_LARGE,
                },
            },
        },
        "/api/runs/{run_id}/files": {
            "get": {
                "summary": "The run's files",
                "parameters": [_RUN_ID],
                "responses": {
                    **_ok({"type": "object", "properties": {"files": {"type": "array", "items": _ref("File")}}}),
                    **_ERRORS,
                },
            }
        },
        "/api/runs/{run_id}/files/{name}": {
            "get": {
                "summary": "Download a file (streamed, with its content type)",
                "parameters": [_RUN_ID, _FILE_NAME],
                "responses": {"200": {"description": "The content"}, **_ERRORS},
            },
            "put": {
                "summary": "Upload a file (streamed body); the same content again is a no-op",
                "parameters": [
                    _RUN_ID,
                    _FILE_NAME,
                    _param("overwrite", "query", {"type": "boolean", "default": False}, "Replace other content"),
                ],
                "requestBody": {
                    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
                },
                "responses": {
                    **_ok(_ref("File"), "Stored", "201"),
                    **_ERRORS,
                    "409": {
                        "description": "The name holds other content",
                        "content": {"application/json": {"schema": _ref("Error")}},
                    },
                    "408": _SLOW_BODY,
                    "413": _TOO_LARGE,
                },
            },
        },
    },
}

for _path, _item in SPEC["paths"].items():
    if _path.startswith("/api/") and "get" in _item:
        _item["get"]["responses"]["503"] = _INGEST_BEHIND


@routes.get("/api/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return json_response(SPEC)
