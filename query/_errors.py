"""The query service's errors, and the one table that maps them to HTTP.

Handlers raise domain errors; :func:`make_error_middleware` turns every one of
them into a JSON body ``{"error": {"code", "message", "parameter"}}`` with the status
from :data:`STATUS`. Anything else that escapes a handler is logged and answered
500 with no details, so a client never sees a stack trace. A browser (a
request accepting ``text/html`` outside ``/api``) gets the same as an HTML page.

Errors::

    QueryError                      -- root; ``code`` and ``parameter`` for the body
    ├── BadRequest (ValueError)     -- 400: a malformed id, name, number or cursor
    ├── Unauthorized                -- 401: missing or wrong bearer token
    ├── Forbidden                   -- 403: a read-only token used for a write
    ├── NotFound (LookupError)      -- 404: no such run, file, experiment or route
    ├── MethodNotAllowed            -- 405
    ├── RequestTimeout              -- 408: a request body that did not arrive in time
    ├── Conflict                    -- 409: a file name already holds other content
    ├── PayloadTooLarge (ValueError)-- 413: an upload over the size limit, an answer over the points budget
    ├── TooManyRequests             -- 429: too many sign-in attempts from one address
    └── Unavailable                 -- 503: PostgreSQL unreachable, restarting or too slow; too busy
        └── IngestBehind            -- 503: a read-after token's wait ran out (body adds ``lag``)

An error raised with ``retry_after`` (seconds) is answered with a
``Retry-After`` header; a :class:`RequestTimeout` closes the connection, whose
unread body cannot be skipped.

asyncpg's connection-level failures (a dropped connection, a server shutting
down, a statement timeout) become :class:`Unavailable` with ``Retry-After``:
they say nothing about the request, and the pool reconnects by itself.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import asyncpg
import orjson
from aiohttp import web

__all__ = [
    "STATUS",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "IngestBehind",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "QueryError",
    "RequestTimeout",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
    "error_body",
    "make_error_middleware",
    "status_of",
]

_log = logging.getLogger("query")


class QueryError(Exception):
    """Root of the query service's errors; ``code`` is a short machine-readable name."""

    default_code = "error"

    def __init__(
        self, message: str, *, code: str | None = None, parameter: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.parameter = parameter
        self.retry_after = retry_after
        #: Members the JSON body carries beside ``error`` (machine-readable details).
        self.extra: Mapping[str, Any] = {}


class BadRequest(QueryError, ValueError):
    default_code = "bad_request"


class Unauthorized(QueryError):
    default_code = "unauthorized"


class Forbidden(QueryError):
    default_code = "forbidden"


class NotFound(QueryError, LookupError):
    default_code = "not_found"


class MethodNotAllowed(QueryError):
    default_code = "method_not_allowed"


class RequestTimeout(QueryError):
    default_code = "request_timeout"


class Conflict(QueryError):
    default_code = "conflict"


class PayloadTooLarge(QueryError, ValueError):
    default_code = "payload_too_large"


class TooManyRequests(QueryError):
    default_code = "too_many_requests"


class Unavailable(QueryError):
    default_code = "unavailable"


class IngestBehind(Unavailable):
    """Ingest had not stored what a read-after token names when its wait ran out.

    ``lag`` (also the body's ``lag`` member) says how far behind, per session.
    """

    def __init__(self, message: str, *, lag: Mapping[str, Any], code: str, parameter: str) -> None:
        super().__init__(message, code=code, parameter=parameter)
        self.extra = {"lag": lag}


#: Failures of the database rather than of the request.
_DATABASE_DOWN: Final = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # shutdown, terminated backend, statement timeout
    ConnectionError,
    TimeoutError,
)


#: The one place a domain error becomes an HTTP status (most specific class wins).
STATUS: Final[Mapping[type[QueryError], int]] = {
    BadRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    MethodNotAllowed: 405,
    RequestTimeout: 408,
    Conflict: 409,
    PayloadTooLarge: 413,
    TooManyRequests: 429,
    Unavailable: 503,
}

# aiohttp raises its own HTTP exceptions for routing and protocol problems;
# they become the same JSON shape.
_HTTP_CODES: Final[Mapping[int, str]] = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    414: "uri_too_long",
    431: "headers_too_large",
}


def status_of(error: QueryError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_body(code: str, message: str, parameter: str | None = None, extra: Mapping[str, Any] | None = None) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message, "parameter": parameter}, **(extra or {})})


def _json_error(
    status: int, code: str, message: str, parameter: str | None = None, extra: Mapping[str, Any] | None = None
) -> web.Response:
    body = error_body(code, message, parameter, extra)
    return web.Response(status=status, body=body, content_type="application/json")


#: Renders an error for a browser page instead of JSON: (status, title, message) -> response.
PageRenderer = Callable[[int, str, str], web.Response]


def make_error_middleware(render_page: PageRenderer) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Build the middleware; ``render_page`` answers errors on non-API paths as HTML."""

    def respond(
        request: web.Request,
        status: int,
        code: str,
        message: str,
        parameter: str | None,
        extra: Mapping[str, Any] | None = None,
    ) -> web.Response:
        if _wants_html(request):
            return render_page(status, code.replace("_", " "), message)
        response = _json_error(status, code, message, parameter, extra)
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="runstream"'
        return response

    @web.middleware
    async def error_middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except QueryError as exc:
            response = respond(request, status_of(exc), exc.code, exc.message, exc.parameter, exc.extra)
            if exc.retry_after is not None:
                response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
            if isinstance(exc, RequestTimeout):
                response.force_close()
            return response
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = _HTTP_CODES.get(exc.status, "http_error")
            message = exc.reason if exc.status != 404 else f"no route for {request.method} {request.path}"
            response = respond(request, exc.status, code, message, None)
            if exc.status == 405 and "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
            return response
        except Exception as exc:
            if not _database_down(exc):
                _log.exception("unexpected error answering %s %s", request.method, request.path)
                return respond(request, 500, "internal", "internal server error", None)
            _log.warning("database unavailable answering %s %s: %r", request.method, request.path, exc)
            response = respond(request, 503, "database_unavailable", "the database is unavailable; retry shortly", None)
            response.headers["Retry-After"] = "1"
            return response

    return error_middleware


def _database_down(exc: BaseException) -> bool:
    """Whether ``exc`` or what it was raised from is a database failure.

    A connection dropped inside ``async with conn.transaction()`` surfaces as
    asyncpg's InterfaceError from the transaction's exit, with the real cause
    as its context.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, _DATABASE_DOWN):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _wants_html(request: web.Request) -> bool:
    # Browsers (which ask for text/html) get an error page outside /api; API
    # clients, scripts and tests get the JSON body everywhere.
    path = request.path
    if path.startswith("/api/") or path in ("/api", "/health"):
        return False
    return "text/html" in request.headers.get("Accept", "")
