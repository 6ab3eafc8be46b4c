"""A training process of the chaos suite: ``python -m tests.chaos.trainer '<json params>'``.

It logs float metrics through the SDK at a paced rate, as a training loop
would, and keeps a *ledger* of what it logged (see :mod:`tests.chaos.ledger`):
one JSON line per run when it starts, and after every ``flush`` a mark of how
far each run's points are known to be delivered (to Kafka or to the fsync'd
spool). A process SIGKILLed mid-run thus leaves a ledger that says which of its
points must arrive. SDK errors are not caught: a training script that crashes
on one is what the suite must notice.

Params: ``runs``, ``metrics``, ``rate`` (points/s offered by this process),
``seconds`` (at most), ``stop`` (a path: once it exists every run completes),
``ledger`` (path), ``experiment``, optional ``ends`` (per run, the second at
which it completes; default all at ``seconds``) and ``options``
(:class:`producer.LoggingOptions` overrides).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from producer import Experiment, LoggingOptions, Run, Workspace
from runstream.config import Settings
from tests.chaos.ledger import FLUSH_SECONDS, metric_name, value_base

#: How often the loop catches up with its schedule; shorter wastes CPU on sleeping.
_TICK_SECONDS = 0.02


class _Ledger:
    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8")

    def write(self, entry: dict[str, Any]) -> None:
        # fsync: a SIGKILL right after must not take back what the line promises.
        self._file.write(json.dumps(entry) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())


class _Logged:
    """One run and how many steps of each metric it has logged."""

    def __init__(self, run: Run, metrics: int, end_seconds: float) -> None:
        self.run = run
        self.end_seconds = end_seconds
        self.steps = 0
        self.calls = [(metric_name(m), value_base(run.id, m)) for m in range(metrics)]

    def log_to(self, steps: int) -> None:
        log = self.run.log
        for step in range(self.steps, steps):
            for name, base in self.calls:
                log(name, base + step)
        self.steps = steps


def train(params: dict[str, Any]) -> None:
    ledger = _Ledger(Path(params["ledger"]))
    live = _start_runs(params, ledger)
    stop = Path(params["stop"])
    # Steps per second of each run, so that all runs together offer `rate` points/s.
    step_rate = params["rate"] / (params["metrics"] * len(live))
    started = time.monotonic()
    next_flush = started + FLUSH_SECONDS
    while live:
        now = time.monotonic()
        elapsed = now - started
        if stop.exists():
            for logged in live:
                logged.end_seconds = min(logged.end_seconds, elapsed)
        for logged in live:
            logged.log_to(int(min(elapsed, logged.end_seconds) * step_rate))
        if now >= next_flush:
            _flush(live, ledger)
            next_flush = time.monotonic() + FLUSH_SECONDS
        for logged in [x for x in live if elapsed >= x.end_seconds]:
            logged.run.complete()
            ledger.write({"run": logged.run.id, "completed": logged.steps, "stats": logged.run.stats()})
            live.remove(logged)
        time.sleep(_TICK_SECONDS)


def _start_runs(params: dict[str, Any], ledger: _Ledger) -> list[_Logged]:
    options = LoggingOptions(**params.get("options", {}))
    experiment = Experiment(Workspace.from_settings(Settings.from_env(), options=options), params["experiment"])
    live = []
    for end in params.get("ends") or [params["seconds"]] * params["runs"]:
        run = experiment.start_logging(outputs=None)
        ledger.write({"run": run.id, "metrics": params["metrics"]})
        live.append(_Logged(run, params["metrics"], float(end)))
    return live


def _flush(live: list[_Logged], ledger: _Ledger) -> None:
    for logged in live:
        # Marked before flushing: everything up to here is delivered once flush returns.
        steps = logged.steps
        logged.run.flush()
        stats = logged.run.stats()
        ledger.write({"run": logged.run.id, "durable": steps, "spooled": stats["spooled_records"]})


if __name__ == "__main__":
    train(json.loads(sys.argv[1]))
