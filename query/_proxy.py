"""Who is asking, and over what: the peer, or what a trusted reverse proxy says about the client.

Behind a proxy the service's peer is the proxy: every client shares its
address, the scheme is the proxy's (http, even when the browser used https)
and the Host may be the proxy's upstream name. The proxy says what it saw in
``X-Forwarded-For``, ``X-Forwarded-Proto`` and ``X-Forwarded-Host``, but any
client can send those headers too, so they are believed only from peers in
``RUNSTREAM_TRUSTED_PROXIES`` (none by default).

``X-Forwarded-For`` is read from the right: each proxy appends the address it
saw, so the rightmost address that is not itself a trusted proxy is the
client; what lies left of it the client may have written. The proto and host
headers are taken from their last (nearest proxy's) value.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from aiohttp import web

__all__ = ["Proxies", "address_key"]


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def address_key(address: str) -> str:
    """The unit a per-client limit counts: the address, or its /64 for IPv6 (one subscriber's block)."""
    ip = _ip(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip) if ip is not None else address


class Proxies:
    """The trusted proxies (addresses or networks) and what their headers tell."""

    def __init__(self, trusted: Iterable[str]) -> None:
        self._networks = [ipaddress.ip_network(t, strict=False) for t in trusted]

    def trusts(self, address: str | None) -> bool:
        ip = _ip(address) if address else None
        return ip is not None and any(ip in network for network in self._networks)

    def _forwarded(self, request: web.Request, header: str) -> str | None:
        """The nearest proxy's value of ``header``, when the peer is a trusted proxy."""
        if not self._networks or not self.trusts(request.remote):
            return None
        values = [v.strip() for v in ",".join(request.headers.getall(header, [])).split(",") if v.strip()]
        return values[-1] if values else None

    def client_address(self, request: web.Request) -> str:
        peer = request.remote or "unknown"
        if not self.trusts(peer):
            return peer
        hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",") if h.strip()]
        for hop in reversed(hops):
            if _ip(hop) is None:
                return peer  # garbage in the chain: count the request against the proxy itself
            if not self.trusts(hop):
                return hop
        return hops[0] if hops else peer

    def is_https(self, request: web.Request) -> bool:
        proto = self._forwarded(request, "X-Forwarded-Proto")
        return proto.lower() == "https" if proto is not None else request.secure

    def host(self, request: web.Request) -> str:
        """The Host the client asked for (``name`` or ``name:port``)."""
        forwarded = self._forwarded(request, "X-Forwarded-Host")
        return forwarded if forwarded is not None else request.headers.get("Host", "")
