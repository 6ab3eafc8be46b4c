"""One producer session: what one process writes to one run.

A :class:`Session` holds the session id, the process id it belongs to, a
bounded buffer, the background sender that publishes it (a task on the
process's one sender thread, sharing its Kafka producer with the other
sessions) and, online, the spool the sender falls back to. A ``Run`` object
owns one session at a time; the process-wide hooks in :mod:`producer._process`
see sessions, never runs.

- start: the sender starts on the first thing buffered (:meth:`Session.sending`);
  a run that only reads never opens a connection.
- after a fork: :meth:`Session.after_fork_in_child` starts over in the child
  (new id, empty buffer, its own sender started on first use) and never
  touches the parent's thread, whose locks may be held; the parent's pending
  points stay the parent's to send.
- exit: :meth:`Session.close` delivers the buffer and a final event, then stops
  the sender; at interpreter exit :mod:`producer._process` stops the sessions
  still sending, or, after SIGTERM, lets the run end itself (``on_exit``).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from producer import _loop, _process
from producer._consistency import LEDGER
from producer._errors import DeliveryError, FlushTimeoutError
from producer._sender import Sender
from producer._sinks import KafkaSink, Sink, SpoolSink
from producer._spool import SUFFIX, SpoolWriter
from runstream.events import WireEvent

if TYPE_CHECKING:
    from producer._workspace import Workspace

#: How a run this process started ends when the process ends under it: called
#: with the error that ends the program (None: SIGTERM, at exit) and the seconds
#: left; returns False if the run was no longer ``Running`` (nothing done).
ExitHook = Callable[[BaseException | None, float], bool]


class Session:
    """The per-process part of a run: session id, pid, buffer, sender and spool."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        run_id: str,
        experiment: str,
        parent_id: str | None,
        offline: bool,
        spool_dir: Path,
    ) -> None:
        self.workspace = workspace
        self.options = workspace.options
        self.run_id = run_id
        self.experiment = experiment
        self.parent_id = parent_id
        self.offline = offline
        self.spool_dir = spool_dir
        #: This process (or the one it was forked from) started the run: its sessions carry
        #: ``run_started`` and end the run with the process (``on_exit``).
        self.owner = False
        self.announced = False  # run_started is known to be in Kafka
        self.on_exit: ExitHook | None = None
        self._open()
        _process.live_sessions.add(self)

    def _open(self) -> None:
        self.id = str(uuid.uuid4())
        self.pid = os.getpid()
        o = self.options
        self.sender = Sender(
            run_id=self.run_id,
            session_id=self.id,
            sink=self._make_sink(),
            flush_points=o.flush_points,
            max_points=o.max_buffered_points,
            wait_seconds=o.buffer_timeout_seconds,
            flush_interval_seconds=o.flush_interval_seconds,
            heartbeat_interval_seconds=o.heartbeat_interval_seconds,
            spool=SpoolWriter(self.spool_path()) if o.spool and not self.offline else None,
            spill_after_seconds=o.spill_after_seconds,
        )
        self.buffer = self.sender.buffer
        # The hot paths read these directly: no attribute chain per call.
        self.fast = self.buffer.fast
        self.append_float = self.buffer.append_float
        self.append_floats = self.buffer.append_floats

    def spool_path(self) -> Path:
        return self.spool_dir / self.run_id / f"{self.id}{SUFFIX}"

    def _make_sink(self) -> Sink:
        if self.offline:
            return SpoolSink(self.spool_path())
        ws = self.workspace
        shared = _loop.current().producer(
            _loop.KafkaEndpoint(ws.kafka_bootstrap, ws.kafka_security),
            compression=self.options.compression,
            request_timeout_seconds=self.options.request_timeout_seconds,
        )
        return KafkaSink(shared, ws.topic)

    @property
    def mine(self) -> bool:
        """Whether this session belongs to this process (a forked child's copy does not)."""
        return self.pid == os.getpid()

    def after_fork_in_child(self) -> None:
        # The parent's thread does not exist here and its locks may be held:
        # start over with a session of our own.
        _process.sending_sessions.discard(self)
        self._open()

    def sending(self) -> Sender:
        """The sender, started on first use (and then known to the ledger, so reads wait for it)."""
        sender = self.sender
        if not sender.started:
            sender.start()
            _process.sending_sessions.add(self)
            LEDGER.add(sender, experiment=self.experiment, parent_id=self.parent_id)
        return sender

    def publish(self, event: WireEvent, weight: int = 1) -> None:
        self.sending()
        self.buffer.add_event(event, weight)

    def timeout(self, seconds: float | None) -> float:
        return self.options.close_timeout_seconds if seconds is None else seconds

    def flush(self, timeout_seconds: float | None) -> None:
        """Block until everything buffered is in Kafka (or the spool, offline)."""
        if not self.sender.started or self.buffer.closed:
            return  # nothing sent yet, or close() already delivered everything
        self.sender.flush(self.timeout(timeout_seconds))

    def announce(self) -> None:
        """Make sure ``run_started`` is in Kafka before another session (process) logs to the run."""
        if not self.owner or self.announced or not self.sender.started or self.buffer.closed:
            return
        try:
            self.sender.flush(self.options.request_timeout_seconds)
        except (FlushTimeoutError, DeliveryError):
            return  # still buffered (or spooled) and delivered later; the other session may have to retry
        self.announced = True

    def seal(self, final: WireEvent | None) -> None:
        """Take nothing more: the buffer holds what is left to deliver, ``final`` last."""
        self.sending()
        self.buffer.close(final)

    def stop(self, timeout_seconds: float | None) -> None:
        """Deliver what :meth:`seal` left (at most ``timeout_seconds``), then stop the sender."""
        try:
            self.sender.stop(self.timeout(timeout_seconds))
        finally:
            _process.sending_sessions.discard(self)
            LEDGER.retire(self.sender)
        self.report_spool_left()

    def report_spool_left(self) -> None:
        left = self.sender.spool_left
        if left is not None:
            # Not an error: the data is safe on disk. But someone has to publish it.
            waiting = self.sender.spooled - self.sender.replayed
            print(
                f"runstream: Kafka was unreachable; {waiting} records of run {self.run_id} wait in {left.path}; "
                "`runstream sync` publishes them",
                file=sys.stderr,
            )

    def stats(self) -> dict[str, Any]:
        """This session's counters: what it sent, retried and had to wait for."""
        sender, buffer = self.sender, self.buffer
        return {
            "session": self.id,
            "records_sent": sender.records_sent,
            "bytes_sent": sender.bytes_sent,
            "retries": sender.retries,
            "timeouts": sender.timeouts,
            "reopens": sender.reopens,
            "heartbeats": sender.heartbeats,
            "record_splits": sender.splits,
            "pending": buffer.pending(),
            "blocked_calls": buffer.blocked_calls,
            "blocked_seconds": buffer.blocked_seconds,
            "buffer_full_errors": buffer.full_errors,
            "pressure_spills": sender.pressure_spills,
            "spooled_records": sender.spooled,
            "spool_errors": sender.spool_errors,
            "replayed_records": sender.replayed,
            "spool_left": None if sender.spool_left is None else str(sender.spool_left.path),
        }
