"""Follow committed metrics as ingest stores them, from the query service, resumable.

::

    from runstream.stream import NewPoints, RunChanged, Stream

    async with Stream(url, token, experiment="mnist", metrics=["loss", "val/*"]) as stream:
        async for event in stream:
            if isinstance(event, NewPoints):
                for name, series in event.metrics.items():
                    print(event.run_id, name, series.steps, series.values)
            elif isinstance(event, RunChanged):
                print(event.run_id, event.status)
            save(stream.cursor)        # resume later: Stream(..., cursor=saved)

Only what PostgreSQL holds is delivered (deduplicated and committed by
ingest); no Kafka credentials are needed, only the query service's URL and
token, over one long-lived HTTP response (Server-Sent Events from
``GET /api/changes/stream``; see ``query/_follow.py`` for the rules).

Resuming. Every event comes with the cursor after it; :attr:`Stream.cursor`
is the cursor after the last event yielded. When the connection drops (the
service restarts, a proxy times out, the network blips) the stream
reconnects by itself with that cursor, backing off up to
``max_retry_seconds``, so the caller sees every point once, across any
number of reconnects. A process that stops and starts again passes the
cursor it saved as ``cursor=``. Without one a stream starts ``start="now"``
(what is stored from now on) or ``start="start"`` (everything, then what comes).

Errors::

    StreamError                     -- root
    └── StreamRefused (ValueError)  -- the service answered 4xx (a filter it cannot parse, a bad
                                       cursor, a wrong token): retrying would not help; ``status``,
                                       ``code`` and ``parameter`` say what was wrong

For notebooks and scripts without an event loop, :class:`SyncStream` runs
the same stream on a thread of its own and is iterated with a plain ``for``.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import orjson

from runstream.events import decode_json_value

__all__ = ["MetricPoints", "NewPoints", "RunChanged", "Stream", "StreamError", "StreamRefused", "SyncStream"]

#: The query service's endpoint.
STREAM_PATH: Final = "/api/changes/stream"
#: The service writes at least every 15 s (a keepalive); silence this long means a dead connection.
_READ_TIMEOUT_SECONDS: Final = 45.0


class StreamError(Exception):
    """Root of the stream client's errors."""


class StreamRefused(StreamError, ValueError):
    """The service refused the stream (4xx): bad input or credentials, which a retry would not fix."""

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        found = body.get("error")
        error: Mapping[str, Any] = found if isinstance(found, dict) else {}
        self.status = status
        self.code: str | None = error.get("code")
        self.parameter: str | None = error.get("parameter")
        super().__init__(f"{status} {self.code}: {error.get('message', body)}")


@dataclass(frozen=True, slots=True)
class MetricPoints:
    """New points of one metric, in (time, ordinal) order; values are float, int, bool or str (NaN and Inf kept)."""

    steps: list[int]
    times: list[float]
    values: list[Any]


@dataclass(frozen=True, slots=True)
class NewPoints:
    """Points of one run as stored since the previous event, by metric."""

    run_id: str
    metrics: dict[str, MetricPoints]
    cursor: str


@dataclass(frozen=True, slots=True)
class RunChanged:
    """A run's details (as ``GET /api/runs/{id}``), first seen or changed (status, end, tags...)."""

    run: dict[str, Any]
    cursor: str

    @property
    def run_id(self) -> str:
        return str(self.run["id"])

    @property
    def status(self) -> str:
        return str(self.run["status"])


Event = NewPoints | RunChanged


class Stream:
    """An async iterator of :class:`NewPoints` and :class:`RunChanged`; see the module docstring.

    Filters: ``experiment`` and/or ``runs`` (at least one), ``metrics`` (names or
    globs: ``*``, ``?``, ``[abc]``), ``tags`` (``{key: value}``, or ``None`` for
    "the tag is set"; all must hold).
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        experiment: str | None = None,
        runs: Sequence[str] = (),
        metrics: Sequence[str] = (),
        tags: Mapping[str, str | None] | None = None,
        start: str = "now",
        cursor: str | None = None,
        retry_seconds: float = 0.5,
        max_retry_seconds: float = 10.0,
    ) -> None:
        if experiment is None and not runs:
            raise ValueError("Stream needs experiment or runs (or both)")
        if start not in ("now", "start"):
            raise ValueError(f"start must be 'now' or 'start', got {start!r}")
        if not 0 < retry_seconds <= max_retry_seconds:
            raise ValueError("retry_seconds must be positive and at most max_retry_seconds")
        self._url = url.rstrip("/") + STREAM_PATH
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        params: list[tuple[str, str]] = [("experiment", experiment)] if experiment is not None else []
        params += [("run", str(r)) for r in runs] + [("metric", m) for m in metrics]
        params += [("tag", k if v is None else f"{k}:{v}") for k, v in (tags or {}).items()]
        self._params = params
        self._start = start
        #: The cursor after the last event yielded (None before the first connection).
        self.cursor = cursor
        self._retry = (retry_seconds, max_retry_seconds)
        self._session: aiohttp.ClientSession | None = None
        self._events: AsyncGenerator[Event, None] | None = None
        #: Connections made after the first (the service restarted, the network dropped).
        self.reconnects = 0

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=_READ_TIMEOUT_SECONDS))

    async def stop(self) -> None:
        """Close the connection; idempotent."""
        session, self._session = self._session, None
        if self._events is not None:
            with contextlib.suppress(Exception):
                await self._events.aclose()
            self._events = None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> Stream:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> Event:
        if self._events is None:
            await self.start()
            self._events = self._follow()
        event = await self._events.__anext__()
        self.cursor = event.cursor
        return event

    async def _follow(self) -> AsyncGenerator[Event, None]:
        delay = self._retry[0]
        first = True
        while True:
            try:
                async for event in self._connect():
                    delay = self._retry[0]  # connected and reading: the next drop starts backing off afresh
                    if event is not None:
                        yield event
            except (aiohttp.ClientError, TimeoutError, _Unavailable):
                pass  # dropped or down: reconnect from the cursor
            if not first:
                self.reconnects += 1
            first = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry[1])

    async def _connect(self) -> AsyncIterator[Event | None]:
        """One connection's events; None for the ``ready`` event, which only moves the cursor."""
        if self._session is None:
            raise StreamError("the stream is stopped")
        params = list(self._params)
        params.append(("cursor", self.cursor) if self.cursor is not None else ("from", self._start))
        async with self._session.get(self._url, params=params, headers=self._headers) as resp:
            if resp.status >= 500:
                raise _Unavailable(resp.status)
            if resp.status != 200:
                body = await resp.read()
                raise StreamRefused(resp.status, _json_object(body))
            async for kind, data, cursor in _frames(resp.content):
                yield _event(kind, data, cursor)


class _Unavailable(Exception):
    """A 5xx answer: the service is starting, stopping or overloaded; retried."""


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {"error": {"message": body[:200].decode("utf-8", "replace")}}
    return doc if isinstance(doc, dict) else {"error": {"message": str(doc)[:200]}}


async def _frames(content: aiohttp.StreamReader) -> AsyncIterator[tuple[str, Any, str | None]]:
    """(event, data, id) of each SSE frame."""
    kind, data, cursor = "message", b"", None
    async for raw in content:
        line = raw.rstrip(b"\r\n")
        if not line:
            if data:
                yield kind, orjson.loads(data), cursor
            kind, data = "message", b""
        elif line.startswith(b"id: "):
            cursor = line[4:].decode()
        elif line.startswith(b"event: "):
            kind = line[7:].decode()
        elif line.startswith(b"data: "):
            data += line[6:]
    raise aiohttp.ClientPayloadError("the stream ended")  # the service stopped: reconnect


def _event(kind: str, data: Any, cursor: str | None) -> Event | None:
    if cursor is None:
        raise StreamError(f"a {kind!r} event came without an id: not a runstream changes stream")
    if kind == "points":
        metrics = {
            name: MetricPoints(m["steps"], m["times"], decode_json_value(m["values"]))
            for name, m in data["metrics"].items()
        }
        return NewPoints(data["run_id"], metrics, cursor)
    if kind == "run":
        return RunChanged(decode_json_value(data), cursor)
    return None  # ready, or an event kind this client does not know yet


class SyncStream:
    """:class:`Stream` for code without an event loop (a notebook cell, a script)::

        with SyncStream(url, token, runs=[run_id], metrics=["loss"]) as stream:
            for event in stream:
                ...

    The stream runs on a thread of its own, with its own event loop, so it
    works inside Jupyter too. ``next_event(timeout_seconds)`` waits at most
    that long (None on timeout); iterating waits for ever.
    """

    def __init__(self, url: str, token: str | None = None, **options: Any) -> None:
        self._stream = Stream(url, token, **options)
        self._queue: queue.Queue[Event | BaseException] = queue.Queue(maxsize=1024)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = threading.Event()
        self.cursor = self._stream.cursor

    def start(self) -> None:
        if self._thread is None:
            # A daemon: a reader left open must not hold the interpreter at exit (nothing is lost with it).
            self._thread = threading.Thread(target=asyncio.run, args=(self._pump(),), name="rs-stream", daemon=True)
            self._thread.start()
            self._ready.wait()

    def stop(self) -> None:
        """Close the stream and its thread; idempotent."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        thread.join()

    def __enter__(self) -> SyncStream:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def __iter__(self) -> Iterator[Event]:
        while True:
            event = self.next_event(None)
            if event is not None:
                yield event

    def next_event(self, timeout_seconds: float | None) -> Event | None:
        """The next event, or None if none came within ``timeout_seconds``; raises what the stream raised."""
        self.start()
        try:
            item = self._queue.get(timeout=timeout_seconds)
        except queue.Empty:
            return None
        if isinstance(item, BaseException):
            raise item
        self.cursor = item.cursor
        return item

    async def _pump(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._ready.set()
        try:
            async with self._stream as stream:
                async for event in stream:
                    while True:  # a reader that lags holds the stream back (bounded queue), never drops
                        try:
                            self._queue.put_nowait(event)
                            break
                        except queue.Full:
                            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            return
        except Exception as exc:  # noqa: BLE001 - handed to the reading thread, which raises it
            self._queue.put(exc)
