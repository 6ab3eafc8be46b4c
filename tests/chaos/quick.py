"""The quick chaos suite as a background process of the test session.

It brings its own Kafka and PostgreSQL (its faults stop and freeze them), so
it needs nothing of the session's and can run beside the other tests: the
session starts it once the tests are collected, and ``tests/test_chaos.py``
waits for its outcomes when it gets there. Its few minutes then overlap the
rest of the suite instead of adding to it.

When the session runs its tests in several processes (pytest-xdist, as
``make test`` does), the controller starts the one suite and names its
directory in :data:`SHARED_DIR_ENV`; the worker that reaches
``tests/test_chaos.py`` attaches to it and waits for the exit status the
controller writes there.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fuzzing import SEED

ROOT = Path(__file__).resolve().parent.parent.parent
#: The quick suite takes three to four minutes alone; the limit leaves room for a busy machine.
TIMEOUT_SECONDS = 600


#: The variable through which a controller names the suite it started to its workers.
SHARED_DIR_ENV = "RUNSTREAM_TEST_QUICK_CHAOS_DIR"


class QuickChaos:
    """One run of ``python -m tests.chaos --quick``: ``start``, then ``outcomes`` (waits), then ``stop``.

    The process that starts the suite owns it (``stop`` interrupts it and removes its
    directory); one made with :meth:`attach` only reads what the owner's suite writes.
    """

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or Path(tempfile.mkdtemp(prefix="runstream-chaos-"))
        self.report = self.directory / "outcomes.json"
        self._output = self.directory / "output.txt"
        #: written, with the exit code, once the suite has exited
        self._exit_status = self.directory / "exit-status"
        self._pid = self.directory / "pid"
        self._proc: subprocess.Popen[bytes] | None = None
        self._owned = directory is None

    @classmethod
    def attach(cls, directory: Path) -> QuickChaos:
        """The suite another process of this session started (or will start) in ``directory``."""
        return cls(directory)

    @property
    def started(self) -> bool:
        return self._pid.exists()

    def start(self) -> QuickChaos:
        with self._output.open("wb") as out:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "tests.chaos", "--quick", "--seed", str(SEED), "--json", str(self.report)],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self._pid.write_text(str(self._proc.pid))
        threading.Thread(target=self._record_exit, args=(self._proc,), name="quick-chaos", daemon=True).start()
        return self

    def _record_exit(self, proc: subprocess.Popen[bytes]) -> None:
        code = proc.wait()
        partial = self._exit_status.with_suffix(".partial")
        partial.write_text(str(code))
        partial.replace(self._exit_status)  # whole or absent, for a reader in another process

    def outcomes(self) -> tuple[dict[str, dict[str, Any]] | None, str]:
        """Each scenario's outcome by name (None if the suite wrote none), and the suite's output."""
        if self._owned and not self.started:
            self.start()
        if not self._exited_within(TIMEOUT_SECONDS):
            self._interrupt()
        output = self._output.read_text(errors="replace") if self._output.exists() else ""
        if not self.report.exists():
            return None, output
        return {o["scenario"]: o for o in json.loads(self.report.read_text())}, output

    def stop(self) -> None:
        """Interrupt a suite still running (the session ended early): it stops its services itself.

        Only the owner stops the suite; an attached reader leaves it to the owner.
        """
        if not self._owned:
            return
        if self._proc is not None and self._proc.poll() is None:
            self._interrupt()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _exited_within(self, seconds: float) -> bool:
        # The suite may be another process's child: its exit is seen through the file its owner writes.
        deadline = time.monotonic() + seconds
        while not self._exit_status.exists():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)
        return True

    def _interrupt(self) -> None:
        if not self._pid.exists():
            return
        try:
            os.kill(int(self._pid.read_text()), signal.SIGINT)  # KeyboardInterrupt: the suite's finally stops its stack
        except ProcessLookupError:
            return
        if not self._exited_within(90) and self._proc is not None:
            self._proc.kill()
            self._proc.wait()


#: Where the session keeps the suite it started (tests/conftest.py).
QUICK_CHAOS = pytest.StashKey[QuickChaos]()
