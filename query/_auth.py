"""Token auth: when a token is configured, every route but the public ones needs it.

An optional separate *write* token guards uploads: then the (read) token and
browser sessions can only read.

Scripts send ``Authorization: Bearer <token>``. Browsers cannot add that header
to page loads or to ``EventSource``, so ``/login`` takes the token once in a
form and sets an HttpOnly, SameSite=Strict session cookie that expires and can
be revoked (:mod:`._sessions`; the token itself never sits in the cookie jar).
A browser that asks for a page without either is sent to ``/login``; any other
client gets 401 JSON. Every comparison is constant-time.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import quote

from aiohttp import web

from ._errors import Forbidden, Unauthorized
from ._sessions import COOKIE
from ._state import SESSIONS

__all__ = ["PROBE_PATHS", "PUBLIC_PATHS", "PUBLIC_PREFIXES", "make_auth_middleware", "token_matches"]

#: What an orchestrator probes, by the pod's address and without a token (_observe).
PROBE_PATHS: Final = frozenset({"/health", "/ready"})
PUBLIC_PATHS: Final = PROBE_PATHS | {"/login"}
PUBLIC_PREFIXES: Final = ("/static/",)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def token_matches(supplied: str, token: str) -> bool:
    # Constant time, so the response time says nothing about how much matched.
    return hmac.compare_digest(supplied.encode("utf-8", "replace"), token.encode("utf-8", "replace"))


_READ_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
# Form posts of the sign-in itself, not writes to runs.
_SESSION_PATHS: Final = frozenset({"/login", "/logout"})


def make_auth_middleware(
    read_token: str | None, write_token: str | None = None
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Reads need ``read_token`` (or the write token, or the session cookie) when it is set.

    Writes (uploads) need ``write_token`` when it is set, else ``read_token``
    when that is set; a read token or a browser session presented for a write
    gets 403. With neither set there is nothing to check.
    """
    read_tokens = [t for t in (read_token, write_token) if t]
    required_for_write = write_token or read_token

    @web.middleware
    async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return await handler(request)
        header = request.headers.get("Authorization")
        if request.method not in _READ_METHODS and path not in _SESSION_PATHS:
            if required_for_write is not None:
                supplied = _bearer(header)
                if not token_matches(supplied, required_for_write):
                    if read_token is not None and token_matches(supplied, read_token):
                        raise Forbidden("this token may read but not write; writes need the write token")
                    raise Unauthorized("the bearer token is not valid for writes", code="bad_token")
            return await handler(request)
        if read_token is None:  # reads are open
            return await handler(request)
        cookie = request.cookies.get(COOKIE)
        if cookie is not None and await request.app[SESSIONS].valid(cookie):
            return await handler(request)
        if header is None and _is_browser_page(request):
            raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")
        supplied = _bearer(header)
        # Compare with every accepted token, not stopping at a match: constant work.
        if not sum(token_matches(supplied, t) for t in read_tokens):
            raise Unauthorized("the bearer token is not valid", code="bad_token")
        return await handler(request)

    return auth_middleware


def _is_browser_page(request: web.Request) -> bool:
    return (
        request.method == "GET"
        and not request.path.startswith("/api/")
        and "text/html" in request.headers.get("Accept", "")
    )


def _bearer(header: str | None) -> str:
    if header is None:
        raise Unauthorized("this service needs an 'Authorization: Bearer <token>' header", code="missing_token")
    scheme, _, supplied = header.partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthorized("the Authorization header must use the Bearer scheme", code="bad_token")
    return supplied.strip()
