"""``Experiment.submit(ScriptRunConfig(...))``: a script run locally as a child process.

The child gets the run's identity in its environment, so ``Run.get_context()``
inside the script returns the submitted run (with a producer session of its
own). Its stdout and stderr go to the driver log,
``<home>/runs/<run id>/driver.log``. A watcher thread appends what the log
gained to the query service's copy every :data:`LOG_UPLOAD_INTERVAL_SECONDS`
(``PUT /api/runs/{id}/logs/driver?offset=N``: each append sends only the new
bytes), so ``wait_for_completion(show_output=True)`` can follow the run from
any machine. When the script exits the watcher appends the rest, uploads the
whole log as the file ``logs/driver.log`` and the script's ``outputs``
directory, and only then sets the status from the exit code: 0 is
``Completed``, anything else ``Failed`` with the code and the end of the log.
A reader that sees the final status has therefore seen the complete log.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from producer._errors import ProducerError, QueryServiceError, RunNotFoundError

if TYPE_CHECKING:
    from producer._http import QueryClient
    from producer._run import Run

#: How often the watcher appends what the driver log gained.
LOG_UPLOAD_INTERVAL_SECONDS = 2.0
# One append at most; well below the service's default upload limit.
_LOG_APPEND_BYTES = 4 << 20
_LOG_TAIL_CHARS = 4000
# The directory that holds the `producer` package: the script can import it even if not installed.
_SDK_ROOT = str(Path(__file__).resolve().parent.parent)


@dataclass(frozen=True)
class ScriptRunConfig:
    """What to run: ``script`` (relative to ``source_directory``) with ``arguments``, by ``python``."""

    source_directory: str | os.PathLike[str]
    script: str
    arguments: Sequence[Any] = field(default_factory=tuple)
    python: str = sys.executable

    def __post_init__(self) -> None:
        source = Path(self.source_directory)
        if not source.is_dir():
            raise ValueError(f"ScriptRunConfig source_directory {str(source)!r} is not a directory")
        if not (source / self.script).is_file():
            raise ValueError(f"ScriptRunConfig script {self.script!r} is not a file in {str(source)!r}")
        if isinstance(self.arguments, str | bytes):
            raise TypeError("ScriptRunConfig arguments must be a list of arguments, not one string")
        for argument in self.arguments:
            if not isinstance(argument, str | int | float) or isinstance(argument, bool):
                raise TypeError(f"ScriptRunConfig argument {argument!r} is not a str or a number")

    def command(self) -> list[str]:
        return [self.python, self.script, *(str(a) for a in self.arguments)]


class ScriptProcess:
    """The child process of a submitted run and the thread that finishes the run when it exits."""

    def __init__(self, run: Run, config: ScriptRunConfig, log_path: Path) -> None:
        self.run = run
        self.config = config
        self.log_path = log_path
        self.returncode: int | None = None
        self.error: BaseException | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: _LogAppender | None = None
        self._watcher: threading.Thread | None = None
        self._done = threading.Event()

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        python_path = os.pathsep.join(p for p in (_SDK_ROOT, os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, **self.run.get_environment(), "PYTHONPATH": python_path, "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(  # noqa: S603 - the user's own script
                self.config.command(),
                cwd=self.config.source_directory,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._log = _LogAppender(self.run._http, self.run.id, self.log_path)
        self._watcher = threading.Thread(target=self._watch, name=f"runstream-script-{self.run.id[:8]}", daemon=True)
        self._watcher.start()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout_seconds: float | None = None) -> bool:
        """Until the run is finished (status published); False at the timeout."""
        return self._done.wait(timeout_seconds)

    def cancel(self) -> None:
        """Ask the script to stop (SIGTERM); the watcher marks the run when it exits."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()

    def _watch(self) -> None:
        assert self._process is not None and self._log is not None  # noqa: S101 - started before the watcher
        try:
            while self.returncode is None:
                try:
                    self.returncode = self._process.wait(LOG_UPLOAD_INTERVAL_SECONDS)
                except subprocess.TimeoutExpired:
                    pass
                self._log.append_new()
            if self._log.error is not None:
                self.error = self._log.error
            self._upload("logs/driver.log", self.log_path)
            if self.returncode == 0:
                self.run.complete()  # uploads the outputs directory too
            elif self.run._cancel_requested:
                self.run._upload_outputs()
                self.run.cancel()
            else:
                self.run._upload_outputs()
                self.run.fail(self._error_details())
        except (ProducerError, OSError) as exc:
            self.error = exc
        finally:
            self._done.set()

    def _upload(self, name: str, path: Path) -> None:
        try:
            self.run.upload_file(name, path)
        except QueryServiceError as exc:
            # The status matters more than the files: record why they are missing and go on.
            self.error = exc

    def _error_details(self) -> dict[str, Any]:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        code = self.returncode
        return {
            "message": f"script {self.config.script} exited with code {code}",
            "exit_code": code,
            "log_tail": text[-_LOG_TAIL_CHARS:],
        }


class _LogAppender:
    """Appends what a growing local log gained to the run's driver log in the query service.

    An append that gets no answer (or a 5xx) is repeated with the same bytes at
    the same offset on the next call (a no-op for the service if it did
    arrive). A refused one (4xx: say 409, someone else wrote the log) ends the
    appending; the error is kept, the script goes on.
    """

    def __init__(self, http: QueryClient, run_id: str, path: Path) -> None:
        self._http = http
        self._url = f"/api/runs/{run_id}/logs/driver"
        self._path = path
        self._sent = 0
        self._pending = b""
        self.error: QueryServiceError | None = None

    def append_new(self) -> None:
        """Send what the file has gained by now; on a failure keep it for the next call."""
        # Up to the size seen now only: a script printing faster than we send must not keep us here.
        end = self._path.stat().st_size
        while (self.error is None or _transient(self.error)) and (self._pending or self._sent < end):
            if not self._pending:
                self._pending = self._read()
            if not self._pending:
                return  # the file shrank (not something the script's output does)
            try:
                self._http.put(
                    f"{self._url}?offset={self._sent}", self._pending, len(self._pending), "application/octet-stream"
                )
            except QueryServiceError as exc:
                self.error = exc
                return
            self.error = None
            self._sent += len(self._pending)
            self._pending = b""

    def _read(self) -> bytes:
        with self._path.open("rb") as file:
            file.seek(self._sent)
            return file.read(_LOG_APPEND_BYTES)


def _transient(error: QueryServiceError) -> bool:
    # No answer or a 5xx: worth repeating. A 4xx will not change by repeating.
    return error.status is None or error.status >= 500


class DriverLogFollower:
    """Prints what a run's driver log gained since the last call, from the query service.

    Works for any run on any machine, submitted here or not (a run without a
    driver log prints nothing). Reading the local file instead would save only
    the append interval and would work only beside the script.
    """

    def __init__(self, http: QueryClient | None, run_id: str) -> None:
        self._http = http
        self._url = f"/api/runs/{run_id}/logs/driver"
        self._offset = 0

    def print_new(self) -> None:
        """Print up to the log's current end (nothing if disabled or nothing is known of the run yet)."""
        while self._http is not None:
            try:
                page = self._http.get_json(self._url, {"offset": str(self._offset)})
            except RunNotFoundError:
                return  # neither the run nor its log has arrived yet
            if page["text"]:
                sys.stdout.write(page["text"])
                sys.stdout.flush()
            self._offset = page["next_offset"]
            if self._offset >= page["size"] or not page["text"]:
                return
