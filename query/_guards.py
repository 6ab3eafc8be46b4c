"""Host and Origin checks: what a browser can be tricked into sending is refused before any handler runs.

**DNS rebinding.** Without a read token, the service answers anyone who can
reach it, and a web page can reach it: a page on ``evil.example`` whose name
then resolves to ``127.0.0.1`` talks to the service *as its own origin*, so
the browser lets it read the answers. The request still says
``Host: evil.example``. A service without a read token therefore answers only
the names a local browser uses for it: ``localhost`` (and ``*.localhost``),
loopback addresses, the bound address, the host of ``RUNSTREAM_QUERY_URL``
and the names in ``RUNSTREAM_ALLOWED_HOSTS`` (``*``: any). Any other Host is
403 ``host_not_allowed``. With a read token a rebound page has nothing to
send, so any Host is answered (a proxy's public name, for one). ``/health``,
``/ready`` and ``/static/`` are answered whatever the Host: they hold nothing
private, and a probe comes by the pod's address.

**Cross-site writes.** A page elsewhere can make a browser send a form
(``POST /login``, ``/logout``) or, without a token, an upload. Browsers name
the page's origin in ``Origin`` on every such request (and say
``Sec-Fetch-Site: cross-site``). A write (any method but GET, HEAD and
OPTIONS) whose ``Origin`` is not this service (the Host it was sent to, or
the origin of ``RUNSTREAM_QUERY_URL``), or is ``null`` (a sandboxed frame, a
file), is 403 ``cross_origin``. Scripts and the SDK send no ``Origin`` and
are not affected.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import urlsplit

from aiohttp import web

from runstream.config import Settings

from ._auth import PROBE_PATHS, PUBLIC_PREFIXES
from ._errors import Forbidden
from ._proxy import Proxies

__all__ = ["make_guard_middleware"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_LOCAL_NAMES: Final = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_READ_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


def _split(authority: str) -> tuple[str, int | None]:
    """(lower-case host without brackets, explicit port or None) of ``host[:port]``."""
    authority = authority.strip().lower()
    if authority.startswith("["):  # [v6 address]:port
        host, _, rest = authority[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif authority.count(":") == 1:
        host, _, port = authority.partition(":")
    else:  # no port, or a bare v6 address
        host, port = authority, ""
    return host.rstrip("."), int(port) if port.isdigit() else None


def _is_local(host: str) -> bool:
    if host in _LOCAL_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Policy:
    def __init__(self, settings: Settings) -> None:
        self.check_host = settings.token is None
        own = _split(urlsplit(settings.query_url).netloc)[0]
        bound = _split(settings.query_host)[0]
        names = {own, *settings.allowed_hosts}
        if bound not in ("", "0.0.0.0", "::"):  # noqa: S104 - the wildcard is no name a client uses
            names.add(bound)
        self.any_host = "*" in names
        self.names = frozenset(_split(n)[0] for n in names if n != "*")
        self.own_origin = _split(urlsplit(settings.query_url).netloc)
        self.proxies = Proxies(settings.trusted_proxies)

    def host_allowed(self, host: str) -> bool:
        return self.any_host or _is_local(host) or host in self.names

    def same_origin(self, request: web.Request, origin: str) -> bool:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False
        theirs = _split(parts.netloc)
        return any(_same(theirs, ours) for ours in (_split(self.proxies.host(request)), self.own_origin))


def _same(a: tuple[str, int | None], b: tuple[str, int | None]) -> bool:
    # A port left implicit on one side is the scheme's default, which the other side may spell out.
    return a[0] == b[0] and (a[1] is None or b[1] is None or a[1] == b[1])


def make_guard_middleware(settings: Settings) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """The Host check (only without a read token) and the Origin check on writes (always)."""
    policy = _Policy(settings)

    @web.middleware
    async def guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if policy.check_host and not (request.path in PROBE_PATHS or request.path.startswith(PUBLIC_PREFIXES)):
            host = _split(policy.proxies.host(request))[0]
            if not policy.host_allowed(host):
                raise Forbidden(
                    f"this service has no read token and answers only local names, not Host {host[:100]!r};"
                    " add the name to RUNSTREAM_ALLOWED_HOSTS or give the service a token (RUNSTREAM_TOKEN)",
                    code="host_not_allowed",
                    parameter="Host",
                )
        if request.method not in _READ_METHODS:
            origin = request.headers.get("Origin")
            cross_site = request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site"
            if cross_site or (origin is not None and not policy.same_origin(request, origin)):
                raise Forbidden(
                    f"a write from another site (Origin {(origin or 'unknown')[:100]!r}) is refused",
                    code="cross_origin",
                    parameter="Origin",
                )
        return await handler(request)

    return guard_middleware
