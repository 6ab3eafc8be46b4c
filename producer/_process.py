"""Process-wide hooks: fork, interpreter exit and SIGTERM.

This is the only module state of the SDK besides ``Run.get_context``'s
context run and the ledger of the sessions this process wrote with
(:data:`producer._consistency.LEDGER`, reset here in a forked child): a weak
set of live producer sessions (:mod:`producer._session`; renewed in a forked
child, announced before a fork), the sessions whose sender is running
(flushed at exit, held strongly so a run dropped without ``complete()`` still
gets there), and whether a SIGTERM arrived (the runs this process started then end
``Canceled``). Nothing here is set up at import time except the fork and
exit hooks themselves; the SIGTERM handler and the excepthook are installed by the first run
a process starts.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
import weakref
from types import TracebackType
from typing import TYPE_CHECKING

from producer import _loop
from producer._consistency import LEDGER, write_handoff
from producer._errors import ProducerError

if TYPE_CHECKING:
    from producer._session import Session

live_sessions: weakref.WeakSet[Session] = weakref.WeakSet()
sending_sessions: set[Session] = set()
_sigterm_installed = False
_terminated = False


def terminated() -> bool:
    """Whether this process received SIGTERM (turned into SystemExit by our handler)."""
    return _terminated


def announce(run_id: str) -> None:
    """Make sure this process's sessions that started ``run_id`` have delivered ``run_started``.

    Before another session of ours writes to the run: ingest refuses data for
    a run it has not seen start.
    """
    for session in list(live_sessions):
        if session.mine and session.run_id == run_id:
            session.announce()


def _before_fork() -> None:
    # The child will log to these runs through sessions of its own.
    for session in list(live_sessions):
        if session.mine:
            session.announce()


def _after_fork_in_child() -> None:
    _loop.after_fork_in_child()  # first: the new sessions below look up the child's loop
    LEDGER.after_fork_in_child()
    for session in list(live_sessions):
        session.after_fork_in_child()


def _flush_at_exit() -> None:
    # The runs' senders work concurrently on one loop: one deadline for all of
    # them, so exit takes at most close_timeout_seconds, not that times the runs.
    started = time.monotonic()
    for session in list(sending_sessions):
        if not session.mine or not session.sender.started:
            continue
        left = max(0.0, session.options.close_timeout_seconds - (time.monotonic() - started))
        try:
            ended = _terminated and session.on_exit is not None and session.on_exit(None, left)
            if not ended:
                session.sender.stop(left)
        except ProducerError as exc:
            print(f"runstream: {exc}", file=sys.stderr)
        session.report_spool_left()
    write_handoff()  # in a submitted script: what the submitter's reads must wait for


def install_handlers() -> None:
    """Called when a process starts its first run; idempotent.

    SIGTERM becomes SystemExit, so buffers are flushed and the runs end
    ``Canceled`` (only in the main thread, and only if the application left
    SIGTERM at its default, which kills the process on the spot, losing the
    buffer). An exception that ends the program fails the runs this process
    started (a KeyboardInterrupt cancels them) instead of leaving them
    ``Running`` until their heartbeats are missed; the previous
    ``sys.excepthook`` still prints it.
    """
    global _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    _sigterm_installed = True
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
    previous = sys.excepthook

    def excepthook(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        _end_owned_runs(error)
        previous(kind, error, tb)

    sys.excepthook = excepthook


def _end_owned_runs(error: BaseException) -> None:
    for session in list(sending_sessions):
        if not session.mine or session.on_exit is None:
            continue
        try:
            session.on_exit(error, session.options.close_timeout_seconds)
        except ProducerError as exc:
            print(f"runstream: {exc}", file=sys.stderr)


def _on_sigterm(signum: int, frame: object) -> None:
    global _terminated
    _terminated = True
    raise SystemExit(128 + signum)


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
atexit.register(_flush_at_exit)
