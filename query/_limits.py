"""Every limit of the query service's API, in one place: the handlers enforce them, the OpenAPI document states them.

A limit is named once here and read by both, so the document never drifts
from what the service does.

The points budget: a JSON answer of a million points is about 40 MB of text,
read from about 25 MB of numpy columns (more for get_metrics, which holds
Python values). :data:`MAX_RESPONSE_POINTS` bounds one answer (runs x
points) and is checked *before* any point is read, from the counts ingest
keeps per series (``series.point_count``), so a request over it costs one
small query. :data:`MAX_HEAVY_READS` answers are built at a time; the others
wait their turn (at most :data:`HEAVY_READ_WAIT_SECONDS`, then 503 with
Retry-After) without holding anything. Answers are written out in pieces
(:func:`._json.stream_json`), which keeps the JSON text from doubling the
memory and gives ``/health``, the pages and light requests their turns on
the event loop meanwhile. Measured (``python -m bench.query_memory``): four
parallel comparisons of 10 runs x 100,000 points peak at about 140 MB, where
they took 450 MB before, and the same with a million points per run (3.7 GB
here, 4.35 GB when the issue was filed) are refused at once.
"""

from __future__ import annotations

from typing import Final

from runstream.names import MAX_FILE_NAME_CHARS

__all__ = [
    "DEFAULT_LOG_READ_BYTES",
    "DEFAULT_RUNS_LIMIT",
    "DEFAULT_SERIES_LIMIT",
    "HEAVY_READ_WAIT_SECONDS",
    "LOGIN_ATTEMPTS",
    "LOGIN_WINDOW_SECONDS",
    "MAX_CURSOR_CHARS",
    "MAX_FILE_NAME_CHARS",
    "MAX_HEAVY_READS",
    "MAX_LOG_OFFSET",
    "MAX_LOG_READ_BYTES",
    "MAX_MAX_POINTS",
    "MAX_METRIC_NAME_CHARS",
    "MAX_RESPONSE_POINTS",
    "MAX_RUNS_LIMIT",
    "MAX_RUN_NAME_CHARS",
    "MAX_SERIES_LIMIT",
    "MAX_SERIES_RUNS",
    "MIN_BODY_BYTES_PER_SECOND",
    "MIN_LOG_READ_BYTES",
    "MIN_MAX_POINTS",
]

# --- points --------------------------------------------------------------------------------
#: Points one answer may hold, summed over its runs and metrics (series pages, comparisons, get_metrics).
MAX_RESPONSE_POINTS: Final = 1_000_000
#: Answers that read points built at once; more wait for a turn.
MAX_HEAVY_READS: Final = 2
#: How long a request waits for a turn before it is answered 503 with Retry-After.
HEAVY_READ_WAIT_SECONDS: Final = 30.0
#: Page size of a series at full resolution: default and largest.
DEFAULT_SERIES_LIMIT: Final = 100_000
MAX_SERIES_LIMIT: Final = 1_000_000
#: ``max_points`` of a downsampled series.
MIN_MAX_POINTS: Final = 2
MAX_MAX_POINTS: Final = 100_000
#: Runs in one comparison: ``/api/series`` and the compare page alike.
MAX_SERIES_RUNS: Final = 100

# --- runs and names --------------------------------------------------------------------------
DEFAULT_RUNS_LIMIT: Final = 50
MAX_RUNS_LIMIT: Final = 1000
MAX_METRIC_NAME_CHARS: Final = 255
#: ``name=`` of ``/api/runs`` (a part of a run's display name).
MAX_RUN_NAME_CHARS: Final = 255
#: A cursor this service issues is well under this; a longer one is refused before it is decoded.
MAX_CURSOR_CHARS: Final = 1024

# --- driver logs -----------------------------------------------------------------------------
MAX_LOG_OFFSET: Final = 10**12 - 1
DEFAULT_LOG_READ_BYTES: Final = 1 << 20
MAX_LOG_READ_BYTES: Final = 1 << 24
#: Room for one whole UTF-8 character, so a read always moves on.
MIN_LOG_READ_BYTES: Final = 4

# --- abuse -----------------------------------------------------------------------------------
#: Sign-in attempts one client address gets per window (a burst), refilled evenly over the window.
LOGIN_ATTEMPTS: Final = 10
LOGIN_WINDOW_SECONDS: Final = 60.0
#: A request body must keep up this rate once its grace (RUNSTREAM_BODY_TIMEOUT_SECONDS) is spent.
MIN_BODY_BYTES_PER_SECOND: Final = 16 * 1024
