"""Checks on request input: every malformed value becomes a :class:`BadRequest` naming it."""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Final

import asyncpg
from aiohttp import web

from runstream.names import MAX_FILE_NAME_CHARS, file_name_problem

from ._errors import BadRequest
from ._limits import MAX_METRIC_NAME_CHARS, MAX_SERIES_RUNS

__all__ = [
    "MAX_FILE_NAME_CHARS",
    "check_file_name",
    "check_metric_name",
    "parse_bool",
    "parse_float",
    "parse_int",
    "parse_run_id",
    "parse_step",
    "query_text_middleware",
]

_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


_BOOLS: Final = {"true": True, "1": True, "false": False, "0": False}


def parse_bool(raw: str | None, parameter: str, *, default: bool = False) -> bool:
    """``true``/``1`` or ``false``/``0`` (any case); absent: ``default``."""
    if raw is None:
        return default
    value = _BOOLS.get(raw.lower())
    if value is None:
        raise BadRequest(f"{parameter} must be true or false, got {raw[:20]!r}", parameter=parameter)
    return value


def parse_run_id(raw: str, parameter: str = "run_id") -> uuid.UUID:
    """A run id in any form :class:`uuid.UUID` reads; canonicalised by the caller with ``str``."""
    if len(raw) > 64:
        raise BadRequest(f"{parameter} is not a UUID (too long)", code="bad_run_id", parameter=parameter)
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise BadRequest(f"{parameter} {raw!r} is not a UUID", code="bad_run_id", parameter=parameter) from None


def parse_compared_runs(raws: list[str]) -> list[uuid.UUID]:
    """The runs of a comparison (``run=`` repeated; the API and the compare page): 1 to MAX_SERIES_RUNS, in order."""
    if not raws:
        raise BadRequest("give at least one run=<run id>", parameter="run")
    if len(raws) > MAX_SERIES_RUNS:
        raise BadRequest(f"at most {MAX_SERIES_RUNS} runs per comparison, got {len(raws)}", parameter="run")
    return list(dict.fromkeys(parse_run_id(r, "run") for r in raws))


def check_file_name(name: str) -> str:
    """A run-relative file name; refuses anything that could leave the run's namespace or hide in it.

    ``name`` is the already URL-decoded value, so ``%2e%2e%2f`` arrives here as
    ``../`` and is refused like the literal form. The rule is the SDK's too
    (:mod:`runstream.names`).
    """
    problem = file_name_problem(name)
    if problem is not None:
        raise BadRequest(f"file name {name[:100]!r} {problem}", code="bad_file_name", parameter="name")
    return name


#: PostgreSQL's refusals of text it cannot hold (a NUL, as text or in jsonb).
_UNSTORABLE_TEXT: Final = (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError)


@web.middleware
async def query_text_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A query parameter with a NUL that reached PostgreSQL is a 400 naming it, not a 500.

    After the handler rather than before, so that the handlers' own checks
    (e.g. ``bad_metric_name``) still answer first with their codes.
    """
    try:
        return await handler(request)
    except _UNSTORABLE_TEXT:
        for key, value in request.query.items():
            if "\x00" in key or "\x00" in value:
                raise BadRequest(
                    f"{key[:40]!r} contains a NUL character", code="bad_character", parameter=key[:40]
                ) from None
        raise


def check_metric_name(name: str) -> str:
    if not name:
        raise BadRequest("metric name is empty", code="bad_metric_name", parameter="name")
    if len(name) > MAX_METRIC_NAME_CHARS:
        raise BadRequest(
            f"metric name is longer than {MAX_METRIC_NAME_CHARS} characters", code="bad_metric_name", parameter="name"
        )
    if _CONTROL.search(name):
        raise BadRequest("metric name contains a control character", code="bad_metric_name", parameter="name")
    return name


def parse_int(raw: str | None, parameter: str, *, default: int, minimum: int, maximum: int) -> int:
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,12}", raw):
        raise BadRequest(f"{parameter} {raw[:40]!r} is not a non-negative integer", parameter=parameter)
    value = int(raw)
    if not minimum <= value <= maximum:
        raise BadRequest(f"{parameter} must be between {minimum} and {maximum}, got {value}", parameter=parameter)
    return value


def parse_step(raw: str | None, parameter: str) -> int | None:
    """An optional step bound: any 64-bit integer."""
    if raw is None:
        return None
    if not re.fullmatch(r"-?[0-9]{1,19}", raw) or not -(2**63) <= int(raw) < 2**63:
        raise BadRequest(f"{parameter} {raw[:40]!r} is not a 64-bit integer", parameter=parameter)
    return int(raw)


def parse_float(raw: str | None, parameter: str) -> float | None:
    """An optional finite number (epoch seconds for time bounds)."""
    if raw is None:
        return None
    try:
        value = float(raw) if len(raw) <= 40 else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise BadRequest(f"{parameter} {raw[:40]!r} is not a finite number", parameter=parameter)
    return value
