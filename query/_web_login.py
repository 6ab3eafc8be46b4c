"""``/login``: a form that trades the service token for a browser session cookie."""

from __future__ import annotations

from aiohttp import web

from . import _html as h
from ._auth import COOKIE, session_value, token_matches
from ._state import SETTINGS
from ._web_pages import html_response

__all__ = ["routes"]

routes = web.RouteTableDef()

_MAX_FORM_BYTES = 8192


def _safe_next(raw: str | None) -> str:
    # Only paths on this service: never "//host" or "https://..." (an open redirect).
    if raw and raw.startswith("/") and not raw.startswith("//") and "\\" not in raw:
        return raw
    return "/"


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
    return html_response(_form(_safe_next(request.query.get("next"))))


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    if request.content_length is not None and request.content_length > _MAX_FORM_BYTES:
        return html_response(_form("/", "The form is too large."), 413)
    form = await request.post()
    next_path = _safe_next(str(form.get("next") or ""))
    token = request.app[SETTINGS].token
    supplied = form.get("token")
    if token is None:
        raise web.HTTPSeeOther(next_path)  # no auth configured: nothing to sign in to
    if not isinstance(supplied, str) or not token_matches(supplied, token):
        return html_response(_form(next_path, "That token is not valid."), 401)
    response = web.HTTPSeeOther(next_path)
    response.set_cookie(COOKIE, session_value(token), httponly=True, samesite="Strict", path="/")
    raise response


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/")
    raise response
