"""Token auth: when a token is configured, every route but the public ones needs it.

Scripts send ``Authorization: Bearer <token>``. Browsers cannot add that header
to page loads or to ``EventSource``, so ``/login`` takes the token once in a
form and sets an HttpOnly, SameSite=Strict cookie holding a value derived from
it (an HMAC, so the token itself never sits in the cookie jar). A browser that
asks for a page without either is sent to ``/login``; any other client gets
401 JSON. Every comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import quote

from aiohttp import web

from ._errors import Unauthorized

__all__ = ["COOKIE", "PUBLIC_PATHS", "make_auth_middleware", "session_value", "token_matches"]

PUBLIC_PATHS: Final = frozenset({"/health", "/login"})
PUBLIC_PREFIXES: Final = ("/static/",)
COOKIE: Final = "runstream_session"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def session_value(token: str) -> str:
    """The cookie value for ``token``: changes whenever the token does."""
    return hmac.new(token.encode("utf-8", "replace"), b"runstream ui session v1", hashlib.sha256).hexdigest()


def token_matches(supplied: str, token: str) -> bool:
    # Constant time, so the response time says nothing about how much matched.
    return hmac.compare_digest(supplied.encode("utf-8", "replace"), token.encode("utf-8", "replace"))


def make_auth_middleware(token: str) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    cookie_value = session_value(token)

    @web.middleware
    async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return await handler(request)
        cookie = request.cookies.get(COOKIE)
        if cookie is not None and hmac.compare_digest(cookie.encode("utf-8", "replace"), cookie_value.encode()):
            return await handler(request)
        header = request.headers.get("Authorization")
        if header is None and _is_browser_page(request):
            raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")
        _check(header, token)
        return await handler(request)

    return auth_middleware


def _is_browser_page(request: web.Request) -> bool:
    return (
        request.method == "GET"
        and not request.path.startswith("/api/")
        and "text/html" in request.headers.get("Accept", "")
    )


def _check(header: str | None, token: str) -> None:
    if header is None:
        raise Unauthorized("this service needs an 'Authorization: Bearer <token>' header", code="missing_token")
    scheme, _, supplied = header.partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthorized("the Authorization header must use the Bearer scheme", code="bad_token")
    if not token_matches(supplied.strip(), token):
        raise Unauthorized("the bearer token is not valid", code="bad_token")
