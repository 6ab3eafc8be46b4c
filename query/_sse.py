"""What the Server-Sent Events routes share: the keepalive, and noticing a client that has left.

aiohttp does not cancel a handler when its client disconnects (that would
cancel database work mid-statement everywhere), and a stream only learns of it
when a write fails. So a waiting stream looks at its connection every
:data:`CLIENT_CHECK_SECONDS`: a closed tab frees its subscription (and the
``runstream_query_sse_clients`` gauge) within a second, not at the next
keepalive.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Final

from aiohttp import web

__all__ = ["CLIENT_CHECK_SECONDS", "KEEPALIVE_SECONDS", "client_gone", "wait_while_connected"]

#: A comment line this often keeps proxies from closing an idle stream.
KEEPALIVE_SECONDS: Final = 15.0
CLIENT_CHECK_SECONDS: Final = 1.0


def client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def wait_while_connected(request: web.Request, event: asyncio.Event, seconds: float) -> None:
    """Until ``event`` is set, ``seconds`` pass or the client has gone, whichever comes first."""
    deadline = time.monotonic() + seconds
    while not event.is_set() and not client_gone(request):
        left = deadline - time.monotonic()
        if left <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), min(CLIENT_CHECK_SECONDS, left))
