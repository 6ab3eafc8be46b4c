"""``/login``: a form that trades the service token for a browser session cookie; ``/logout`` ends it.

Sign-in attempts are limited per client address (:mod:`._rate_limit`; behind
a proxy, the address it reports when it is trusted): past the limit, 429 with
``Retry-After``, before the guess is looked at. The cookie is HttpOnly,
SameSite=Strict, lasts ``RUNSTREAM_SESSION_MAX_AGE_SECONDS`` and is ``Secure``
when the browser came over https: directly, as a trusted proxy says
(``X-Forwarded-Proto`` from ``RUNSTREAM_TRUSTED_PROXIES``), or whenever the
service's public URL (``RUNSTREAM_QUERY_URL``) is https.

``next`` (where to go after signing in) must be a path on this service. Only
a plain absolute path is followed; anything a browser could read as another
host is replaced by ``/``: ``//host``, ``/\\host``, whitespace or control
characters (which browsers drop, turning ``/<tab>/host`` into ``//host``),
invisible characters, dot segments (normalised away, ``/..//host`` is
``//host``), and the same again after percent-decoding (``/%2F/host``,
``/%09/host``, ``/%5Chost``), for a browser or proxy that decodes it.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import unquote, urlsplit

import yarl
from aiohttp import web

from runstream.names import hidden_character

from . import _html as h
from ._auth import token_matches
from ._errors import TooManyRequests
from ._html_response import html_response
from ._proxy import address_key
from ._sessions import COOKIE
from ._state import LOGIN_LIMITER, PROXIES, SESSIONS, SETTINGS

__all__ = ["routes", "safe_next"]

routes = web.RouteTableDef()

_MAX_FORM_BYTES: Final = 8192
_MAX_NEXT_CHARS: Final = 2048
#: Rounds of percent-decoding looked through (``%2509`` is ``%09`` is a tab).
_DECODE_ROUNDS: Final = 3


def _looks_elsewhere(text: str) -> bool:
    """Whether ``text``, read the way browsers read a URL, could leave this origin."""
    squeezed = "".join(c for c in text if not (c.isspace() or hidden_character(c)))
    return (
        not squeezed.startswith("/")
        or squeezed.startswith(("//", "/\\"))
        or any(s in (".", "..") for s in urlsplit(squeezed).path.replace("\\", "/").split("/"))
    )


def _same_origin_path(raw: str) -> bool:
    if len(raw) > _MAX_NEXT_CHARS or not raw.startswith("/") or "\\" in raw:
        return False
    if any(c.isspace() for c in raw) or hidden_character(raw) is not None:
        return False
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc:
        return False
    text = raw
    for _ in range(_DECODE_ROUNDS + 1):
        if _looks_elsewhere(text):
            return False
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    else:
        return False  # still encoded after that many rounds: nothing a link of ours looks like
    # What the redirect will carry, once the URL library has had its say.
    return not _looks_elsewhere(str(yarl.URL(raw)))


def safe_next(raw: str | None) -> str:
    """``raw`` if it is a path on this service, else ``/``."""
    return raw if raw and _same_origin_path(raw) else "/"


def _form(next_path: str, message: str = "") -> str:
    note = f'<p class="error">{h.esc(message)}</p>' if message else ""
    return h.page(
        "Sign in",
        f"<h1>Sign in</h1>{note}"
        '<form method="post" action="/login">'
        f'<input type="hidden" name="next" value="{h.esc(next_path)}">'
        '<label>Token <input type="password" name="token" autocomplete="current-password" autofocus></label> '
        '<button type="submit">Sign in</button></form>',
    )


@routes.get("/login")
async def login_form(request: web.Request) -> web.Response:
    return html_response(_form(safe_next(request.query.get("next"))))


def _spend_attempt(request: web.Request) -> None:
    address = request.app[PROXIES].client_address(request)
    wait = request.app[LOGIN_LIMITER].take(address_key(address))
    if wait > 0:
        raise TooManyRequests(
            f"too many sign-in attempts from {address[:64]}; try again in {max(1, round(wait))} s",
            parameter="token",
            retry_after=wait,
        )


def _served_over_https(request: web.Request) -> bool:
    """The browser came over https: directly, as a trusted proxy says, or as the service's public URL says."""
    return request.app[PROXIES].is_https(request) or request.app[SETTINGS].query_url.startswith("https://")


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    if request.content_length is not None and request.content_length > _MAX_FORM_BYTES:
        return html_response(_form("/", "The form is too large."), 413)
    token = request.app[SETTINGS].token
    if token is not None:
        _spend_attempt(request)
    form = await request.post()
    next_path = safe_next(str(form.get("next") or ""))
    supplied = form.get("token")
    if token is None:
        raise web.HTTPSeeOther(next_path)  # no auth configured: nothing to sign in to
    if not isinstance(supplied, str) or not token_matches(supplied, token):
        return html_response(_form(next_path, "That token is not valid."), 401)
    sessions = request.app[SESSIONS]
    response = web.HTTPSeeOther(next_path)
    response.set_cookie(
        COOKIE,
        await sessions.open(),
        max_age=sessions.max_age_seconds,
        httponly=True,
        samesite="Strict",
        path="/",
        secure=_served_over_https(request) or None,
    )
    raise response


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    """End the session: revoked for good (a copy of the cookie is worth nothing), and the cookie deleted."""
    cookie = request.cookies.get(COOKIE)
    if cookie is not None:
        await request.app[SESSIONS].revoke(cookie)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/")
    raise response
