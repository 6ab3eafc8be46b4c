"""The events topic as a supported interface: what a Kafka-native consumer imports.

A consumer (aiokafka, a Flink or Spark job calling Python, ``kcat`` piped into
a script) reads records of the events topic and gets exactly the batches
ingest stores with::

    from runstream.contract import Deduplicator, EventError, decode_batch

    dedupe = Deduplicator()
    for record in records:
        try:
            batch = decode_batch(record.value)
        except EventError as exc:      # ingest dead-letters it; skip it too
            continue
        if dedupe.accept(batch):
            ...                        # each batch once, in its run's order

The names here are the supported surface (a test pins them): the format's
decoder and types from :mod:`runstream.events`, the dedupe rule from
:mod:`runstream.dedupe`, and the JSON Schema of a record
(:func:`event_schema`, the file ``runstream/events.schema.json``), which
``docs/events.md`` explains and ``docs/asyncapi.yaml`` refers to.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Final

from runstream.dedupe import Deduplicator
from runstream.events import (
    FORMAT_VERSION,
    STATUSES,
    TERMINAL_STATUSES,
    Batch,
    BatchHeader,
    Event,
    EventError,
    decode_batch,
    decode_json_value,
)

__all__ = [
    "EVENT_SCHEMA_FILE",
    "FORMAT_VERSION",
    "STATUSES",
    "TERMINAL_STATUSES",
    "Batch",
    "BatchHeader",
    "Deduplicator",
    "Event",
    "EventError",
    "decode_batch",
    "decode_json_value",
    "event_schema",
]

#: The JSON Schema (draft 2020-12) of a record value, shipped in the package.
EVENT_SCHEMA_FILE: Final = "events.schema.json"


def event_schema() -> dict[str, Any]:
    """The JSON Schema of an events record (format version :data:`FORMAT_VERSION`) as a dict."""
    text = resources.files("runstream").joinpath(EVENT_SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
