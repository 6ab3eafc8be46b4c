"""Detached service processes tracked by pid files, so `down` stops exactly what `up` started.

A pid alone names whatever process has it now: after a reboot or a crash the
number may belong to something else, and a pid file anyone could write names
anything. So a pid file records the process's identity as well - its command
line and its start time (``/proc/<pid>/stat``, clock ticks since boot) - and
a process counts as ours only while both still match. Services run with
umask 077, so everything they write under ``RUNSTREAM_HOME`` is private.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ops.stack._private import PRIVATE_UMASK, check_owned, private_dir, write_private

__all__ = ["alive", "log_tail", "read_pid", "record_pid", "spawn_detached", "stop_pid"]

_EXEC_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class _Identity:
    start_ticks: int
    argv: tuple[str, ...]


def _identity(pid: int) -> _Identity | None:
    """The process's start time and command line, None if there is no such process (or a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as file:
            fields = file.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            cmdline = file.read()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    if fields[0] == "Z":
        return None
    # Field 22 of stat is the start time; `fields` begins at field 3 (the state).
    argv = tuple(part.decode("utf-8", "surrogateescape") for part in cmdline.split(b"\0")[:-1])
    return _Identity(int(fields[19]), argv)


def spawn_detached(
    argv: Sequence[str], *, pid_file: Path, log_file: Path, env: Mapping[str, str], cwd: Path | None = None
) -> int:
    """Start ``argv`` in its own session (umask 077), output appended to ``log_file``; record who it is.

    A shell starts it in the background and exits, so the service is not our
    child: it outlives us, and no Popen object is left to reap it. We wait
    for the shell's child to exec ``argv`` before recording it, so the record
    holds the service's command line, not the shell's.
    """
    for directory in (log_file.parent, pid_file.parent):
        if not directory.exists():
            private_dir(directory)
    result = subprocess.run(  # noqa: S603 - the service's argv passed as "$@", never parsed by the shell
        ["/bin/sh", "-c", '"$@" </dev/null >>"$RUNSTREAM_SERVICE_LOG" 2>&1 & echo $!', "sh", *argv],
        env={**env, "RUNSTREAM_SERVICE_LOG": str(log_file)},
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        start_new_session=True,
        umask=PRIVATE_UMASK,
    )
    pid = int(result.stdout.strip())
    wanted = tuple(argv)
    deadline = time.monotonic() + _EXEC_TIMEOUT_SECONDS
    while (found := _identity(pid)) is not None and found.argv != wanted and time.monotonic() < deadline:
        time.sleep(0.005)
    if found is not None:
        _write_record(pid_file, pid, found)
    return pid


def record_pid(pid_file: Path, pid: int) -> None:
    """Record a running process as the stack's (``pid_file`` then names it for status and ``down``)."""
    found = _identity(pid)
    if found is None:
        raise ProcessLookupError(f"no process {pid} to record in {pid_file}")
    if not pid_file.parent.exists():
        private_dir(pid_file.parent)
    _write_record(pid_file, pid, found)


def _write_record(pid_file: Path, pid: int, found: _Identity) -> None:
    record = {"pid": pid, "start_ticks": found.start_ticks, "argv": list(found.argv)}
    write_private(pid_file, json.dumps(record))


def log_tail(log_file: Path, chars: int = 2000) -> str:
    """The end of a service's log ('' before it wrote one): what to show when it died."""
    try:
        return log_file.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return ""


def read_pid(pid_file: Path) -> int | None:
    """The pid recorded in ``pid_file`` if that process is still the one we started, else None.

    A pid file of another user, or one whose process has a different start
    time or command line (the pid was reused, or the file was forged), names
    no process of ours.
    """
    check_owned(pid_file)
    try:
        record = json.loads(pid_file.read_text(encoding="utf-8"))
        pid, start_ticks, argv = int(record["pid"]), int(record["start_ticks"]), tuple(record["argv"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
    return pid if _identity(pid) == _Identity(start_ticks, argv) else None


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); reap it if it has exited.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return _identity(pid) is not None
    return done == 0


def stop_pid(pid_file: Path, *, timeout_seconds: float = 30.0) -> bool:
    """SIGTERM the recorded process, SIGKILL it after the timeout; True if one of ours was running.

    A pid file that does not name a process we started is removed and nothing
    is signalled. The process is held by a pidfd from before its identity is
    checked, so the signal cannot reach another process that got the pid since.
    """
    pid = read_pid(pid_file)
    try:
        fd = os.pidfd_open(pid) if pid is not None else None
    except ProcessLookupError:
        fd = None
    if fd is None:
        pid_file.unlink(missing_ok=True)
        return False
    try:
        if read_pid(pid_file) != pid:  # it exited (and the pid moved on) between the two looks
            pid_file.unlink(missing_ok=True)
            return False
        signal.pidfd_send_signal(fd, signal.SIGTERM)
        if not _exited(fd, timeout_seconds):
            signal.pidfd_send_signal(fd, signal.SIGKILL)
            _exited(fd, None)
    except ProcessLookupError:
        pass  # it exited by itself meanwhile
    finally:
        os.close(fd)
    pid_file.unlink(missing_ok=True)
    return True


def _exited(pidfd: int, timeout_seconds: float | None) -> bool:
    """Wait until the process behind ``pidfd`` exits (a pidfd turns readable then)."""
    readable, _, _ = select.select([pidfd], [], [], timeout_seconds)
    return bool(readable)
