"""Child processes: benchmark workers that answer with one JSON line, children that report on a
multiprocessing queue, and long-lived services."""

# ruff: noqa: S603, S607 - the bench starts its own processes with fixed argument lists.

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ops.stack import free_port, log_tail, wait_http_ok

__all__ = [
    "BENCH_PYTHON",
    "PROJECT_PYTHON",
    "ROOT",
    "RESULT_MARK",
    "Service",
    "WorkerError",
    "free_port",
    "next_message",
    "peak_rss_bytes",
    "run_worker",
]

ROOT = Path(__file__).resolve().parent.parent
#: runstream's side runs in the project's environment, exactly as users run it.
PROJECT_PYTHON = Path(sys.executable)
#: The baselines (MLflow, W&B) live in the benchmark's own environment.
BENCH_PYTHON = ROOT / "bench" / ".venv" / "bin" / "python"
#: Workers print their result on a line of its own after this mark (libraries print too).
RESULT_MARK = "BENCH-RESULT "


class WorkerError(RuntimeError):
    """A worker exited without a result; the message carries the tail of its output."""


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    env.update(extra or {})
    return env


def run_worker(
    module: str,
    params: Mapping[str, Any],
    *,
    python: Path = PROJECT_PYTHON,
    env: Mapping[str, str] | None = None,
    timeout_seconds: float = 900.0,
    log_dir: Path | None = None,
) -> dict[str, Any]:
    """Run ``python -m bench.workers.<module> '<json params>'`` and return its result."""
    argv = [str(python), "-m", f"bench.workers.{module}", json.dumps(params)]
    try:
        done = subprocess.run(
            argv,
            cwd=ROOT,
            env=child_env(env),
            capture_output=True,
            text=True,
            timeout=timeout_seconds,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise WorkerError(f"{module} did not finish within {timeout_seconds:.0f}s") from exc
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        with (log_dir / f"{module}.log").open("a") as log:
            log.write(f"$ {' '.join(argv)}\n{done.stdout}\n{done.stderr}\n")
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
            return result
    tail = (done.stdout[-1500:] + "\n" + done.stderr[-3000:]).strip()
    raise WorkerError(f"{module} exited {done.returncode} without a result:\n{tail}")


async def next_message(messages: Any, procs: Sequence[Any], what: str) -> dict[str, Any]:
    """The next message a multiprocessing child put on ``messages``.

    Raises if the message reports an error, or once every one of ``procs`` has
    exited with nothing left on the queue: a child that dies must not leave
    the figure waiting forever.
    """
    while True:
        try:
            message: dict[str, Any] = await asyncio.to_thread(messages.get, True, 1.0)
        except queue.Empty:
            if not any(p.is_alive() for p in procs) and messages.empty():
                raise RuntimeError(f"{what} exited with {[p.exitcode for p in procs]}") from None
            continue
        if "error" in message:
            raise RuntimeError(f"{what} failed: {message['error']}")
        return message


def peak_rss_bytes(pid: int) -> int | None:
    """VmHWM of a live process: the most resident memory it ever had."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time a live process has used (its threads included)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Service:
    """A long-lived child (ingest worker, query service, MLflow server), output to a log file."""

    def __init__(self, name: str, argv: Sequence[str], *, env: Mapping[str, str], log_file: Path) -> None:
        self.name = name
        self.log_file = log_file
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                list(argv),
                cwd=ROOT,
                env=dict(env),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    async def wait_http_ok(self, url: str, *, timeout_seconds: float = 90.0) -> None:
        """Return once ``url`` answers 200; fail at once, with the end of the log, if the service exits."""
        try:
            await wait_http_ok(
                url,
                alive=self.alive,
                exited_message=f"{self.name} exited during start",
                timeout_seconds=timeout_seconds,
            )
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}:\n{self.log_tail()}") from exc

    def log_tail(self, chars: int = 2000) -> str:
        return log_tail(self.log_file, chars)

    def stop(self, timeout_seconds: float = 20.0) -> None:
        """SIGTERM the service's process group, SIGKILL it after the timeout."""
        if self.proc.poll() is not None:
            return
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_seconds
        while self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.proc.poll() is None:
            self._signal(signal.SIGKILL)
            self.proc.wait()

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
