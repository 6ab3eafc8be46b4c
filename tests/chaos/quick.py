"""The quick chaos suite as a background process of the test session.

It brings its own Kafka and PostgreSQL (its faults stop and freeze them), so
it needs nothing of the session's and can run beside the other tests: the
session starts it once the tests are collected, and ``tests/test_chaos.py``
waits for its outcomes when it gets there. Its few minutes then overlap the
rest of the suite instead of adding to it.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.fuzzing import SEED

ROOT = Path(__file__).resolve().parent.parent.parent
#: The quick suite takes three to four minutes alone; the limit leaves room for a busy machine.
TIMEOUT_SECONDS = 600


class QuickChaos:
    """One run of ``python -m tests.chaos --quick``: ``start``, then ``outcomes`` (waits), then ``stop``."""

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="runstream-chaos-"))
        self.report = self._dir / "outcomes.json"
        self._output = self._dir / "output.txt"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> QuickChaos:
        with self._output.open("wb") as out:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "tests.chaos", "--quick", "--seed", str(SEED), "--json", str(self.report)],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    def outcomes(self) -> tuple[dict[str, dict[str, Any]] | None, str]:
        """Each scenario's outcome by name (None if the suite wrote none), and the suite's output."""
        if self._proc is None:
            self.start()
        assert self._proc is not None
        try:
            self._proc.wait(timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self._interrupt()
        output = self._output.read_text(errors="replace")
        if not self.report.exists():
            return None, output
        return {o["scenario"]: o for o in json.loads(self.report.read_text())}, output

    def stop(self) -> None:
        """Interrupt a suite still running (the session ended early): it stops its services itself."""
        if self._proc is not None and self._proc.poll() is None:
            self._interrupt()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _interrupt(self) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGINT)  # KeyboardInterrupt: the suite's finally stops its stack
        try:
            self._proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


#: Where the session keeps the suite it started (tests/conftest.py).
QUICK_CHAOS = pytest.StashKey[QuickChaos]()
