"""Bearer-token auth: when a token is configured, every route but ``/health`` needs it."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from ._errors import Unauthorized

__all__ = ["PUBLIC_PATHS", "make_auth_middleware"]

PUBLIC_PATHS: Final = frozenset({"/health"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_auth_middleware(token: str) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    expected = token.encode("utf-8", "replace")

    @web.middleware
    async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in PUBLIC_PATHS:
            _check(request.headers.get("Authorization"), expected)
        return await handler(request)

    return auth_middleware


def _check(header: str | None, expected: bytes) -> None:
    if header is None:
        raise Unauthorized("this service needs an 'Authorization: Bearer <token>' header", code="missing_token")
    scheme, _, supplied = header.partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthorized("the Authorization header must use the Bearer scheme", code="bad_token")
    # Constant time, so the response time says nothing about how much of the token matched.
    if not hmac.compare_digest(supplied.strip().encode("utf-8", "replace"), expected):
        raise Unauthorized("the bearer token is not valid", code="bad_token")
