"""Process-wide hooks: fork, interpreter exit and SIGTERM.

This is the only module state of the SDK besides ``Run.get_context``'s
context run and the ledger of the sessions this process wrote with
(:data:`producer._consistency.LEDGER`, reset here in a forked child): a weak
set of live runs (reset in a forked child, announced before a fork), the
runs whose sender is running (flushed at exit, held strongly so a run
dropped without ``complete()`` still gets there), and whether a SIGTERM arrived (the runs this process started then end
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
    from producer._run import Run

live_runs: weakref.WeakSet[Run] = weakref.WeakSet()
sending_runs: set[Run] = set()
_sigterm_installed = False
_terminated = False


def terminated() -> bool:
    """Whether this process received SIGTERM (turned into SystemExit by our handler)."""
    return _terminated


def report_spool_left(run: Run) -> None:
    left = run._sender.spool_left
    if left is not None:
        # Not an error: the data is safe on disk. But someone has to publish it.
        waiting = run._sender.spooled - run._sender.replayed
        print(
            f"runstream: Kafka was unreachable; {waiting} records of run {run.id} wait in {left.path}; "
            "`runstream sync` publishes them",
            file=sys.stderr,
        )


def announce(run_id: str) -> None:
    """Make sure this process's sessions that started ``run_id`` have delivered ``run_started``.

    Before another session of ours writes to the run: ingest refuses data for
    a run it has not seen start.
    """
    for run in list(live_runs):
        if run._pid == os.getpid() and run._stored_id == run_id:
            run._announce()


def _before_fork() -> None:
    # The child will log to these runs through sessions of its own.
    for run in list(live_runs):
        if run._pid == os.getpid():
            run._announce()


def _after_fork_in_child() -> None:
    _loop.after_fork_in_child()  # first: the new sessions below look up the child's loop
    LEDGER.after_fork_in_child()
    for run in list(live_runs):
        run._after_fork_in_child()


def _flush_at_exit() -> None:
    # The runs' senders work concurrently on one loop: one deadline for all of
    # them, so exit takes at most close_timeout_seconds, not that times the runs.
    started = time.monotonic()
    for run in list(sending_runs):
        if run._pid != os.getpid() or not run._sender.started:
            continue
        left = max(0.0, run._options.close_timeout_seconds - (time.monotonic() - started))
        try:
            if _terminated and run._owner and run._status == "Running":
                run._finish("Canceled", {"message": "the process received SIGTERM"}, left)
            else:
                run._sender.stop(left)
        except ProducerError as exc:
            print(f"runstream: {exc}", file=sys.stderr)
        report_spool_left(run)
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
    for run in list(sending_runs):
        if run._pid != os.getpid() or not run._owner or run._status != "Running":
            continue
        try:
            if isinstance(error, KeyboardInterrupt) or (isinstance(error, SystemExit) and _terminated):
                run.cancel()
            elif not isinstance(error, SystemExit):
                run.fail(error)
        except ProducerError as exc:
            print(f"runstream: {exc}", file=sys.stderr)


def _on_sigterm(signum: int, frame: object) -> None:
    global _terminated
    _terminated = True
    raise SystemExit(128 + signum)


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
atexit.register(_flush_at_exit)
