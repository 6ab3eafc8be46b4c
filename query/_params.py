"""Query parameters the API does not take, or takes once, given anyway: 400 naming them.

A misspelt filter (``?statuss=Failed``, or ``?name=`` before the runs list
knew it) used to be ignored, and the answer looked like a result. The
OpenAPI document already lists what each operation takes, so it is the one
definition read here: a query parameter it does not list for the matched
route and method is 400 ``unknown_parameter``, and one given more than once
whose schema is not an array is 400 ``repeated_parameter``. A parameter added
to an operation's document is accepted by that alone.

Only the routes the document describes (``/api/...`` and ``/health``) are
checked; the HTML pages take whatever browsers and links add.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from aiohttp import web

from ._errors import BadRequest
from ._openapi import SPEC

__all__ = ["parameters_middleware"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _operations(spec: Mapping[str, Any]) -> dict[tuple[str, str], tuple[frozenset[str], frozenset[str]]]:
    """(path, METHOD) -> (query parameters taken, those that may repeat)."""
    out = {}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            query = [p for p in op.get("parameters", []) if p["in"] == "query"]
            names = frozenset(p["name"] for p in query)
            repeatable = frozenset(p["name"] for p in query if p["schema"].get("type") == "array")
            out[(path, method.upper())] = (names, repeatable)
            if method == "get":
                out[(path, "HEAD")] = (names, repeatable)
    return out


_TAKEN: Final = _operations(SPEC)


@web.middleware
async def parameters_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    resource = request.match_info.route.resource
    if resource is not None:
        taken = _TAKEN.get((resource.canonical, request.method))
        if taken is not None:
            _check(request, *taken)
    return await handler(request)


def _check(request: web.Request, names: frozenset[str], repeatable: frozenset[str]) -> None:
    for key, count in Counter(k for k, _ in request.query.items()).items():
        if key not in names:
            listed = ", ".join(sorted(names)) or "none"
            raise BadRequest(
                f"unknown parameter {key[:40]!r}; {request.method} {_resource_path(request)} takes: {listed}",
                code="unknown_parameter",
                parameter=key[:40],
            )
        if count > 1 and key not in repeatable:
            raise BadRequest(f"{key} is given {count} times; give it once", code="repeated_parameter", parameter=key)


def _resource_path(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else request.path
