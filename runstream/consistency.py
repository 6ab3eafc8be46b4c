"""Read-your-writes: the token a reader sends so that a read sees its own writes.

The pipeline is asynchronous: a point is in Kafka when ``run.log()`` and the
sender are done with it, and in PostgreSQL only once ingest has stored it. A
reader that must see what it wrote names what it wrote: every producer session
numbers its Kafka records ``seq`` 1, 2, ... (see :mod:`runstream.events`) and
ingest stores the highest ``seq`` per session in ``producer_sessions.last_seq``
in the same transaction as the records' data. So "ingest has stored session S
up to seq N" means every record S published up to N is readable.

The token travels as one request header of the JSON API's reads::

    Runstream-Read-After: 5f0c9a1e-...-9d2b:17,0b6e44f2-...-1c3a:3
    Prefer: wait=12.5

``Runstream-Read-After`` lists ``session:seq`` pairs (at most
:data:`MAX_READ_AFTER_SESSIONS`; a reader with more sends them in several
requests). The query service answers once ingest has stored every listed
session up to its seq, waiting at most ``Prefer: wait`` seconds (RFC 7240;
fractions allowed, capped at :data:`MAX_READ_WAIT_SECONDS`, which is also the
wait when none is given). Past the wait it answers 503 with the error code
:data:`INGEST_BEHIND` and, besides the usual ``error`` object, a ``lag`` object
naming each session still behind with its stored and required seq. A read
without the header is answered at once, as before.

Both sides use this module, so the header, its limits and its syntax have one
definition.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from typing import Final

__all__ = [
    "INGEST_BEHIND",
    "MAX_READ_AFTER_SESSIONS",
    "MAX_READ_WAIT_SECONDS",
    "PREFER_HEADER",
    "READ_AFTER_HEADER",
    "format_read_after",
    "format_wait",
    "parse_read_after",
    "parse_wait",
]

READ_AFTER_HEADER: Final = "Runstream-Read-After"
PREFER_HEADER: Final = "Prefer"
#: Sessions in one header: 100 pairs of at most 57 characters stay well inside
#: the 8190 bytes a header line may have (aiohttp's default, kept by the service).
MAX_READ_AFTER_SESSIONS: Final = 100
#: The longest the query service holds a read for ingest to catch up.
MAX_READ_WAIT_SECONDS: Final = 60.0
#: The error code of a read whose wait ran out before ingest stored what it needs.
INGEST_BEHIND: Final = "ingest_behind"
#: A seq is a positive int64 (a bigint column).
_MAX_SEQ: Final = 2**63 - 1


def format_read_after(sessions: Mapping[str, int]) -> str:
    """The header value for ``{session id: seq}`` (at most MAX_READ_AFTER_SESSIONS of them)."""
    if not sessions or len(sessions) > MAX_READ_AFTER_SESSIONS:
        raise ValueError(f"a read-after token names 1..{MAX_READ_AFTER_SESSIONS} sessions, got {len(sessions)}")
    return ",".join(f"{session}:{seq}" for session, seq in sessions.items())


def parse_read_after(value: str) -> dict[str, int]:
    """``{session id: seq}`` from the header; ValueError saying what is wrong."""
    pairs = [part.strip() for part in value.split(",")]
    if len(pairs) > MAX_READ_AFTER_SESSIONS:
        raise ValueError(f"names {len(pairs)} sessions; at most {MAX_READ_AFTER_SESSIONS} per request")
    out: dict[str, int] = {}
    for pair in pairs:
        session, sep, seq_text = pair.partition(":")
        if not sep:
            raise ValueError(f"{pair[:60]!r} is not session:seq")
        try:
            session_id = str(uuid.UUID(session.strip()))
        except ValueError:
            raise ValueError(f"session {session[:60]!r} is not a UUID") from None
        digits = seq_text.strip()
        if not (digits.isascii() and digits.isdigit() and len(digits) <= 19 and 0 < int(digits) <= _MAX_SEQ):
            raise ValueError(f"seq {seq_text[:30]!r} of session {session_id} is not a positive integer")
        out[session_id] = max(out.get(session_id, 0), int(digits))
    return out


def format_wait(seconds: float) -> str:
    """The ``Prefer`` header value asking the service to wait up to ``seconds``."""
    return f"wait={max(0.0, seconds):.3f}"


def parse_wait(value: str | None) -> float:
    """Seconds to wait from a ``Prefer`` header (other preferences ignored), capped; the cap if absent."""
    if value is None:
        return MAX_READ_WAIT_SECONDS
    for preference in value.split(","):
        name, _, raw = preference.split(";")[0].strip().partition("=")
        if name.strip().lower() != "wait":
            continue
        try:
            seconds = float(raw.strip().strip('"'))
        except ValueError:
            raise ValueError(f"wait={raw[:30]!r} is not a number of seconds") from None
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"wait={raw[:30]!r} is not a number of seconds")
        return min(seconds, MAX_READ_WAIT_SECONDS)
    return MAX_READ_WAIT_SECONDS
