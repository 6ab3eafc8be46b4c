"""A producer process logging at an offered rate, with probe points for the freshness figure.

For each measurement it starts a run, tells the parent its id, then for
``seconds`` logs ``rate`` points per second over 20 metrics plus a point of the
metric ``probe`` every ``probe_interval`` seconds whose value is the
``time.time()`` at which it was logged, once the parent says go. Then it flushes, completes the run and
says how many probes it logged.
"""

from __future__ import annotations

import time
from typing import Any

TICK_SECONDS = 0.005


def paced(env: dict[str, str], rate: int, seconds: float, probe_interval: float, reps: int, out: Any, go: Any) -> None:
    from producer import Experiment, Workspace
    from runstream.config import Settings

    try:
        workspace = Workspace.from_settings(Settings.from_env(env))
        names = [f"metric_{m:02d}" for m in range(20)]
        for _ in range(reps):
            run = Experiment(workspace, "bench-freshness").start_logging()
            run.log("probe", time.time())  # creates the series before the clock matters
            run.flush(60)
            out.put({"run_id": run.id})
            go.get()  # the parent's poller is running
            logged, probes = log_paced([(run.log, n) for n in names], rate, seconds, run.log, probe_interval)
            run.complete()
            out.put({"done": run.id, "probes": probes, "points": logged})
    except BaseException as exc:
        out.put({"error": f"{type(exc).__name__}: {exc}"})
        raise


def log_paced(
    series: list[tuple[Any, str]], rate: float, seconds: float, probe: Any, probe_interval: float
) -> tuple[int, int]:
    """Log ``series`` (``(run.log, name)`` pairs) round-robin at ``rate`` points/s for ``seconds``, and
    ``probe("probe", time.time())`` every ``probe_interval`` seconds unless ``probe`` is None; (points, probes)."""
    started = time.monotonic()
    logged = probes = 0
    next_probe = started
    while (elapsed := time.monotonic() - started) < seconds:
        due = int(rate * elapsed)
        while logged < due:
            log, name = series[logged % len(series)]
            log(name, logged * 0.5)
            logged += 1
        if probe is not None and time.monotonic() >= next_probe:
            probe("probe", time.time())
            probes += 1
            next_probe += probe_interval
        time.sleep(TICK_SECONDS)
    return logged, probes
