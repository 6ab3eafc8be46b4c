"""A time limit on request bodies: an upload that trickles in or stops is cut off with 408.

aiohttp's keep-alive timer closes a connection whose request *head* never
ends, but once a handler reads the body it waits as long as the client
likes: a client sending a byte a minute holds a connection, a file
descriptor and a temporary file forever.

A body may take ``RUNSTREAM_BODY_TIMEOUT_SECONDS`` (the grace) plus one second
per :data:`~._limits.MIN_BODY_BYTES_PER_SECOND` bytes received so far: a large
upload on a slow but working link goes on, a stalled or trickling one ends
once its grace is spent. A watchdog beside the handler compares the bytes
received with that allowance and, when the body is overdue, fires the
handler's timeout: the handler is cancelled wherever it waits (the artifact
store discards what it had written), and the client gets 408
``request_timeout`` on a connection that is then closed. Once the whole body
has arrived the watchdog ends, and the handler's own work is not timed here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import StreamReader, web

from ._errors import RequestTimeout
from ._limits import MIN_BODY_BYTES_PER_SECOND

__all__ = ["make_body_deadline_middleware"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _watch(content: StreamReader, timeout: asyncio.Timeout, grace_seconds: float) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not content.is_eof():
        allowed = started + grace_seconds + content.total_bytes / MIN_BODY_BYTES_PER_SECOND
        now = loop.time()
        if now >= allowed:
            timeout.reschedule(now)
            return
        await asyncio.sleep(min(allowed - now, 1.0))


def make_body_deadline_middleware(
    grace_seconds: float,
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    @web.middleware
    async def body_deadline_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.body_exists or request.content.is_eof():
            return await handler(request)
        try:
            async with asyncio.timeout(None) as timeout:
                watchdog = asyncio.create_task(_watch(request.content, timeout, grace_seconds))
                try:
                    return await handler(request)
                finally:
                    watchdog.cancel()
        except TimeoutError:
            if not timeout.expired():
                raise  # the handler's own timeout, not ours
            raise RequestTimeout(
                f"the request body did not arrive in time: {request.content.total_bytes} bytes in over"
                f" {grace_seconds:g}s (a body may take RUNSTREAM_BODY_TIMEOUT_SECONDS plus one second"
                f" per {MIN_BODY_BYTES_PER_SECOND} bytes)",
                parameter="body",
            ) from None

    return body_deadline_middleware
