"""The process's one background thread: an asyncio loop shared by every run's sender.

A process logging to many runs (a sweep, a benchmark with hundreds of runs)
has one thread and one Kafka producer per cluster, not one per run: each
run's session is a task on this loop (:class:`producer._sender.Sender`), with
its own buffer, seq numbering and spool. The thread starts on first use and
idles when no session is sending.

It is per process: :func:`current` builds a new one when the pid changed, so a
forked child never touches its parent's thread (which does not exist in the
child) or its locks (which may be held).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from producer._sinks import SharedProducer
from runstream.config import KafkaSecurity

T = TypeVar("T")


class SenderLoop:
    """One daemon thread running one event loop; ``submit`` coroutines to it from any thread."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._producers: dict[tuple[KafkaEndpoint, str | None, float], SharedProducer] = {}

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, its thread started on first use."""
        with self._lock:
            if self._loop is None:
                ready = threading.Event()
                loop = asyncio.new_event_loop()
                loop.set_default_executor(_ExitSafeExecutor(max_workers=2, thread_name_prefix="runstream-sender"))
                # Daemon: exit is not held up by an idle loop; _process flushes the runs at exit.
                thread = threading.Thread(target=_serve, args=(loop, ready), name="runstream-sender", daemon=True)
                thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def submit(self, coro: Coroutine[Any, Any, None]) -> Future[None]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def producer(
        self, target: KafkaEndpoint, *, compression: str | None, request_timeout_seconds: float
    ) -> SharedProducer:
        """The process's Kafka producer for these settings (made once, started while in use)."""
        key = (target, compression, request_timeout_seconds)
        with self._lock:
            shared = self._producers.get(key)
            if shared is None:
                shared = self._producers[key] = SharedProducer(
                    target, compression=compression, request_timeout_seconds=request_timeout_seconds
                )
            return shared


class _ExitSafeExecutor(ThreadPoolExecutor):
    """The sender loop's executor, which still works in the flush at interpreter exit.

    aiokafka computes each SASL/SCRAM step, and asyncio resolves host names,
    in the loop's executor. At exit, Python's atexit hooks (our flush among
    them) run after thread pools stop taking work, so a connection made then
    would fail and the run's last records be spooled: the work is done in the
    loop's own thread instead, which at exit has nothing else to do.
    """

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        try:
            return super().submit(fn, *args, **kwargs)
        except RuntimeError:  # "cannot schedule new futures after interpreter shutdown"
            future: Future[T] = Future()
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                future.set_exception(exc)
            return future


@dataclass(frozen=True)
class KafkaEndpoint:
    """A cluster and how to reach it: the key of a process's shared producers."""

    kafka_bootstrap: str
    kafka_security: KafkaSecurity


def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(ready.set)
    loop.run_forever()


_current: SenderLoop | None = None
_current_lock = threading.Lock()


def current() -> SenderLoop:
    """This process's sender loop."""
    global _current
    with _current_lock:
        if _current is None or _current.pid != os.getpid():
            _current = SenderLoop()
        return _current


def after_fork_in_child() -> None:
    """Called by :mod:`producer._process` in a forked child before its runs make new sessions."""
    # Another thread of the parent may have held the lock at fork time.
    global _current_lock
    _current_lock = threading.Lock()
