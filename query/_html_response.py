"""HTML pages as aiohttp responses, with the headers every page carries (its CSP first)."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from . import _html as h

__all__ = ["error_page", "html_response"]

# Scripts only from this service, no inline script; inline styles are the page's own.
_CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors {ancestors}; base-uri 'none'; form-action 'self'"
)


def html_response(text: str, status: int = 200, *, frame_ancestors: str = "'none'") -> web.Response:
    """A page; only run pages pass ``frame_ancestors`` (RUNSTREAM_EMBED_ORIGINS: a notebook's ``RunDetails``)."""
    response = web.Response(status=status, text=text, content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = _CSP.format(ancestors=frame_ancestors)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def error_page(status: int, title: str, message: str) -> web.Response:
    return html_response(h.page(title, f"<h1>{h.esc(status)} {h.esc(title)}</h1><p>{h.esc(message)}</p>"), status)
