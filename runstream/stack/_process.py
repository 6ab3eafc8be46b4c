"""Detached service processes tracked by pid files, so `down` stops exactly what `up` started."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["alive", "log_tail", "read_pid", "spawn_detached", "stop_pid"]


def spawn_detached(
    argv: Sequence[str], *, pid_file: Path, log_file: Path, env: Mapping[str, str], cwd: Path | None = None
) -> int:
    """Start ``argv`` in its own session, output appended to ``log_file``; record its pid.

    A shell starts it in the background and exits, so the service is not our
    child: it outlives us, and no Popen object is left to reap it.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["/bin/sh", "-c", '"$@" </dev/null >>"$RUNSTREAM_SERVICE_LOG" 2>&1 & echo $!', "sh", *argv],
        env={**env, "RUNSTREAM_SERVICE_LOG": str(log_file)},
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        start_new_session=True,
    )
    pid = int(result.stdout.strip())
    pid_file.write_text(str(pid))
    return pid


def log_tail(log_file: Path, chars: int = 2000) -> str:
    """The end of a service's log ('' before it wrote one): what to show when it died."""
    try:
        return log_file.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return ""


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


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
        return _not_zombie(pid)
    return done == 0


def _not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def stop_pid(pid_file: Path, *, timeout_seconds: float = 30.0) -> bool:
    """SIGTERM the recorded process, SIGKILL it after the timeout; True if one was running."""
    pid = read_pid(pid_file)
    if pid is None or not alive(pid):
        pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
        while alive(pid):
            time.sleep(0.05)
    pid_file.unlink(missing_ok=True)
    return True
