"""How every long-running component logs: plain lines for a terminal, or one JSON object per line.

``RUNSTREAM_LOG_FORMAT=json`` (:attr:`runstream.config.Settings.log_format`)
makes each record one line that log collectors (Loki, CloudWatch, Elastic,
``kubectl logs | jq``) read without a parsing rule::

    {"time": "2026-12-04T14:32:42.123Z", "level": "WARNING", "logger": "ingest",
     "component": "ingest", "message": "flush of 12 records failed, ...", "pid": 7}

with ``exception`` (the formatted traceback) when there is one, and any
``extra={...}`` fields a caller passes. ``text`` keeps the familiar
``time level logger: message`` lines.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final

import orjson

__all__ = ["JsonFormatter", "configure_logging"]

TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Attributes every LogRecord has: anything else on a record came from ``extra=``.
_STANDARD: Final = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, UTC timestamps with milliseconds; ``component`` names the service."""

    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "component": self.component,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        return orjson.dumps(entry, default=str).decode()


def configure_logging(log_format: str, *, component: str, level: int = logging.INFO) -> None:
    """Route the root logger to stderr in ``log_format`` (``text`` or ``json``), replacing its handlers."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter(component))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
