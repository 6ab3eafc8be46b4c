"""The background sender of one producer session: a task on the process's sender loop.

Every session of a process runs as a task on the one thread and event loop of
:mod:`producer._loop`, and the Kafka sinks share one producer per cluster, so
a process logging to hundreds of runs has one thread, not hundreds. Within a
session nothing changes: its task wakes when the buffer asks (``flush_points`` reached), when a flush
is requested, or every ``flush_interval_seconds``; it drains the buffer,
packs the items into records (``seq`` numbered from 1 without gaps for the
session) and publishes them one after the other, so the run's records stay in
order on their partition. A record that fails is retried with the same bytes
and the same ``seq`` (ingest drops a duplicate by seq) until it is delivered,
the failure proves fatal, or ``stop`` gives up at its deadline. Only then is
the buffer told what was delivered, which is what frees room for ``log()``.

When Kafka has failed for ``spill_after_seconds``, when ``stop`` runs out of
time, or when the buffer is full and a caller is about to wait for room (Kafka
slower than the training loop), the session *spools*: this record and every
later one are appended to the session's spool file instead (fsync'd, so they
count as delivered and the buffer keeps its memory bound). Every
``spill_after_seconds`` the task tries to replay the spool to Kafka from
where it left off (a caller waiting for room again interrupts the replay);
once it is all published the file is removed and records go to Kafka
directly again. The task does one thing at a time, so the partition sees the
session's seqs in order. A spool left at exit is published by ``runstream
sync``.

Heartbeats go through the buffer like any event, so they are ordered with
the data.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from aiokafka.errors import MessageSizeTooLargeError

from producer import _batching, _loop
from producer._buffer import Buffer, Item
from producer._errors import DeliveryError, FlushTimeoutError
from producer._sinks import PublishTimeoutError, Sink, is_fatal, needs_reopen
from producer._spool import SpoolWriter, read_records
from runstream.events import heartbeat_event

_BACKOFF_SECONDS = (0.1, 0.25, 0.5, 1.0, 2.0)
#: The smallest record budget the sender will shrink to when the topic refuses large records.
_MIN_BUDGET = 16 * 1024
_PROBE_TIMEOUT_SECONDS = 1.0


class _Aborted(Exception):
    """stop() gave up waiting; leave what is undelivered."""


class _Pressed(Exception):
    """A caller waits for room while the spool replays: replay later."""


class Sender:
    """Publishes one producer session's buffer. ``start()`` / ``flush()`` / idempotent ``stop()``.

    Its work runs as one task on the process's :mod:`producer._loop`, beside
    the other sessions' tasks; its sink may share a Kafka producer with them.
    """

    def __init__(
        self,
        *,
        run_id: str,
        session_id: str,
        sink: Sink,
        flush_points: int,
        max_points: int,
        wait_seconds: float,
        flush_interval_seconds: float,
        heartbeat_interval_seconds: float,
        spool: SpoolWriter | None = None,
        spill_after_seconds: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.run_id = run_id
        self.session_id = session_id
        self._key = run_id.encode()
        self._sink = sink
        self._interval = flush_interval_seconds
        self._heartbeat = heartbeat_interval_seconds
        self._clock = clock
        self.buffer = Buffer(
            flush_points=flush_points,
            max_points=max_points,
            wait_seconds=wait_seconds,
            wake=self.wake,
            relieve=self._relieve if spool is not None else None,
        )
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup = asyncio.Event()
        #: set when a caller starts waiting for room: wakes a publish waiting on Kafka, to spill
        self._relief = asyncio.Event()
        self._done = threading.Event()
        self._stopping = False
        self._aborted = False
        self._stopped = False
        self.error: BaseException | None = None
        self.seq = 0
        self.records_sent = 0
        self.bytes_sent = 0
        self.retries = 0
        self.reopens = 0
        self.heartbeats = 0
        self.splits = 0
        self._budget = _batching.BUDGET
        self._sink_open = False
        self._spool = spool
        self._spill_after = spill_after_seconds
        self._spooling = False
        self._replay_offset = 0
        self._next_probe = 0.0
        self.timeouts = 0  # publishes Kafka did not acknowledge in time
        self.spooled = 0  # records written to the spool
        self.replayed = 0  # spooled records later published to Kafka
        self.pressure_spills = 0  # times a full buffer sent the session to the spool
        self.spool_errors = 0  # spool appends the disk refused (retried)
        self.spool_error: OSError | None = None  # the last of them
        #: the spool file this session left unpublished when its task ended, if any
        self.spool_left: SpoolWriter | None = None

    # --- lifecycle (caller's threads) --------------------------------------

    @property
    def started(self) -> bool:
        return self._loop is not None

    def start(self) -> None:
        """Start the session's task on the process's sender loop; idempotent."""
        with self._lock:
            if self._loop is not None:
                return
            if self._stopped:
                raise RuntimeError("Sender.start after stop")
            sender_loop = _loop.current()
            self._loop = sender_loop.loop
            sender_loop.submit(self._main())

    def wake(self) -> None:
        """Ask the task to drain now; safe from any thread, a no-op before start."""
        self._set_soon(self._wakeup)

    def _relieve(self) -> None:
        # Called by the buffer, lock held, when a caller is about to wait for room.
        self._set_soon(self._relief)
        self._set_soon(self._wakeup)

    def _set_soon(self, event: asyncio.Event) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the loop closed in between
                pass

    def flush(self, timeout_seconds: float) -> None:
        """Block until everything buffered before the call is delivered."""
        self.start()
        mark = self.buffer.mark()
        self.wake()
        if not self.buffer.wait_delivered(mark, timeout_seconds):
            raise FlushTimeoutError(
                f"run {self.run_id}: {self.buffer.pending()} points or events not delivered to Kafka "
                f"within {timeout_seconds}s (retries so far: {self.retries})"
            )

    def stop(self, timeout_seconds: float) -> None:
        """Deliver what is buffered, then end the session's task; idempotent.

        Raises FlushTimeoutError if the deadline passes first (the task is
        ended anyway) and DeliveryError if Kafka refused the data for good.
        """
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            started = self._loop is not None
            self._stopping = True
        if not started:
            return
        self.wake()
        if not self._done.wait(timeout_seconds):
            self._aborted = True
            self.wake()
            self._done.wait(5.0)
        pending = self.buffer.pending()
        if self.error is not None:
            raise DeliveryError(f"run {self.run_id}: Kafka refused the run's data: {self.error}") from self.error
        if pending:
            raise FlushTimeoutError(
                f"run {self.run_id}: {pending} points or events not delivered to Kafka "
                f"within {timeout_seconds}s (retries: {self.retries})"
            )

    # --- the task ------------------------------------------------------------

    async def _main(self) -> None:
        try:
            try:
                await self._pump()
            except _Aborted:
                pass
            finally:
                await self._close_sink()
                if self._spool is not None:
                    self._spool.close()
                    if self._spooling:
                        self.spool_left = self._spool
        except BaseException as exc:  # noqa: BLE001 - reported through the buffer to the caller
            self.error = exc
            self.buffer.fail(exc)
        finally:
            self._done.set()

    async def _ensure_open(self) -> None:
        if not self._sink_open:
            await self._sink.open()
            self._sink_open = True

    async def _close_sink(self) -> None:
        if self._sink_open:
            self._sink_open = False
            await self._sink.close()

    async def _pump(self) -> None:
        next_heartbeat = time.monotonic() + self._heartbeat
        while True:
            timeout = min(self._interval, max(0.0, next_heartbeat - time.monotonic()))
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except TimeoutError:
                pass
            self._wakeup.clear()
            if time.monotonic() >= next_heartbeat:
                next_heartbeat = time.monotonic() + self._heartbeat
                self._add_heartbeat()
            if self._spooling and time.monotonic() >= self._next_probe and not self._aborted:
                await self._replay()
            items, mark = self.buffer.drain()
            if items:
                for group in _batching.group(items, self._budget):
                    await self._publish(group)
            self.buffer.delivered(mark)
            if self._stopping and self.buffer.pending() == 0:
                if self._spooling and not self._aborted:
                    await self._replay()  # one last chance before leaving it to `runstream sync`
                return

    def _add_heartbeat(self) -> None:
        if self.buffer.closed or self._stopping:
            return
        heartbeat = heartbeat_event(self._clock())
        try:
            self.buffer.add_event(heartbeat, wait_for_room=False)
        except Exception:  # noqa: BLE001 - closed in between, or full: a heartbeat can be skipped
            return
        self.heartbeats += 1

    async def _publish(self, items: list[Item]) -> None:
        value = _batching.encode(self.run_id, self.session_id, self.seq + 1, items)
        try:
            await self._send(value)
        except MessageSizeTooLargeError:
            # The topic's limit is below the format's: learn a smaller budget,
            # and send this group again as smaller records, in order.
            if not _batching.splittable(items) or len(value) <= _MIN_BUDGET:
                raise
            self.splits += 1
            # Parts are bounded by half this record's size, so each retry is smaller.
            self._budget = min(self._budget, max(_MIN_BUDGET, len(value) // 2))
            for part in _batching.group(items, self._budget):
                await self._publish(part)
            return
        self.seq += 1

    async def _send(self, value: bytes) -> None:
        """Deliver one record to Kafka or, while the session spools, to the spool."""
        while not (await self._spool_record(value) if self._spooling else await self._to_kafka(value)):
            pass  # the session switched between Kafka and the spool: the other one takes it

    async def _to_kafka(self, value: bytes) -> bool:
        """Publish with retries; False once the session has switched to the spool instead."""
        started = time.monotonic()
        attempt = 0
        while True:
            if self._spool is not None and (self._aborted or self._pressed()):
                # stop() gave up on Kafka, or a caller waits for room: the disk takes it.
                if not self._aborted:
                    self.pressure_spills += 1
                self._start_spooling()
                return False
            try:
                await self._ensure_open()
                if not await self._deliver(value):
                    continue  # a caller needs room now: spooled at the top of the loop
            except Exception as exc:  # noqa: BLE001 - classified below
                if is_fatal(exc):
                    raise
                if isinstance(exc, PublishTimeoutError):
                    self.timeouts += 1
                if self._spool is not None and time.monotonic() - started >= self._spill_after:
                    self._start_spooling()
                    return False
                self.retries += 1
                if needs_reopen(exc):
                    self.reopens += 1
                    await self._sink.reset()
                await self._backoff(attempt)
                attempt += 1
                continue
            self.records_sent += 1
            self.bytes_sent += len(value)
            return True

    async def _deliver(self, value: bytes) -> bool:
        """Publish ``value``; False if a caller asked for room first (the send stays in flight)."""
        if self._spool is None:
            await self._sink.publish(self._key, value)
            return True
        publish = asyncio.ensure_future(self._sink.publish(self._key, value))
        while not publish.done():
            relief = asyncio.ensure_future(self._relief.wait())
            try:
                await asyncio.wait((publish, relief), return_when=asyncio.FIRST_COMPLETED)
            finally:
                relief.cancel()
            self._relief.clear()
            if not publish.done() and self._pressed():
                publish.cancel()
                await asyncio.wait((publish,))
                return False
            # Otherwise the caller that asked has found room since: keep waiting for Kafka.
        publish.result()
        return True

    def _pressed(self) -> bool:
        """A caller waits for room and the spool can make it."""
        return self._spool is not None and self.buffer.waiters > 0

    def _start_spooling(self) -> None:
        self._spooling = True
        self._next_probe = time.monotonic() + self._spill_after

    async def _spool_record(self, value: bytes) -> bool:
        """Append ``value`` to the spool; while the disk refuses (full, read-only), retry.

        Meanwhile the record (and what follows it) stays in memory, undelivered,
        so the buffer's bound holds: callers block and then get BufferFullError
        only once ``max_buffered_points`` are waiting. Every ``spill_after_seconds``
        Kafka gets a chance again: a replay of what the spool holds; if that
        succeeds, returns False and the record goes to Kafka.
        """
        assert self._spool is not None  # noqa: S101 - only called with a spool
        attempt = 0
        while True:
            try:
                self._spool.append(value)
            except OSError as exc:
                self.spool_errors += 1
                self.spool_error = exc
            else:
                self.spooled += 1
                return True
            if await self._pause(_BACKOFF_SECONDS[min(attempt, len(_BACKOFF_SECONDS) - 1)], lambda: False):
                raise _Aborted  # stop() gave up: the record is reported undelivered
            attempt += 1
            if time.monotonic() >= self._next_probe:
                await self._replay()
                if not self._spooling:
                    return False  # Kafka took the spool back: try it for this record too

    async def _replay(self) -> None:
        """Publish the spool from where the last replay stopped; on success, Kafka again."""
        assert self._spool is not None  # noqa: S101 - only spooling with a spool
        try:
            await self._ensure_open()
            # The file is missing if the disk refused even its creation.
            held = read_records(self._spool.path, self._replay_offset) if self._spool.path.exists() else ()
            for value, offset in held:
                if self._pressed():
                    raise _Pressed  # Kafka is slower than the caller: go on spooling
                # A probe must not hold up the buffer for long while Kafka is still away.
                await self._sink.publish(self._key, value, _PROBE_TIMEOUT_SECONDS)
                self._replay_offset = offset
                self.replayed += 1
                self.records_sent += 1
                self.bytes_sent += len(value)
        except Exception as exc:  # noqa: BLE001 - Kafka still away (or too slow): try again later
            if is_fatal(exc):
                raise
            if needs_reopen(exc):
                self.reopens += 1
                await self._sink.reset()
            self._next_probe = time.monotonic() + self._spill_after
            return
        self._spool.close()
        self._spool.path.unlink(missing_ok=True)
        self._replay_offset = 0
        self._spooling = False

    async def _backoff(self, attempt: int) -> None:
        # A caller waiting for room cuts the wait short too: the caller then spools.
        aborted = await self._pause(_BACKOFF_SECONDS[min(attempt, len(_BACKOFF_SECONDS) - 1)], self._pressed)
        if aborted and self._spool is None:
            raise _Aborted

    async def _pause(self, seconds: float, interrupt: Callable[[], bool]) -> bool:
        """Sleep ``seconds``, cut short by ``interrupt()`` or stop()'s abort; True if aborted."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self._aborted and not interrupt():
            await asyncio.sleep(min(0.05, deadline - time.monotonic()))
        return self._aborted
