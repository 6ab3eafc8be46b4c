"""One producer process of the many-series figure, started with multiprocessing (spawn).

It opens ``runs`` runs, waits at the barrier with the others, then for
``seconds`` logs each of the ``runs`` x ``metrics`` series at
``rate_per_series`` points per second, spread evenly over time (series after
series, step after step: the shape of a fleet of training processes each
logging a dict of metrics per step). With ``probe_interval`` it also logs a
``probe`` point on a run of its own every ``probe_interval`` seconds whose
value is the ``time.time()`` it was logged (the freshness figure's probe).
Then it flushes, completes its runs and reports what it logged.
"""

from __future__ import annotations

import time
from typing import Any

TICK_SECONDS = 0.005


def live(
    env: dict[str, str],
    runs: int,
    metrics: int,
    rate_per_series: float,
    seconds: float,
    probe_interval: float,
    ready: Any,
    out: Any,
) -> None:
    from producer import Experiment, Workspace
    from runstream.config import Settings

    try:
        workspace = Workspace.from_settings(Settings.from_env(env))
        opened = [Experiment(workspace, "bench-series").start_logging() for _ in range(runs)]
        probe = None
        if probe_interval:
            probe = Experiment(workspace, "bench-series-probe").start_logging()
            probe.log("probe", time.time())  # creates the series before the clock matters
            probe.flush(60)
            out.put({"probe_run": probe.id})
        ready.wait()
        logged, probes = _log_paced(opened, metrics, rate_per_series, seconds, probe, probe_interval)
        logged_at = time.time()
        for run in [*opened, *([probe] if probe else [])]:
            run.flush(600)
            run.complete()
        out.put({"points": logged, "probes": probes, "logged_at": logged_at, "run_ids": [r.id for r in opened]})
    except BaseException as exc:  # the parent must hear about it, not wait forever
        out.put({"error": f"{type(exc).__name__}: {exc}"})
        raise


def _log_paced(
    runs: list[Any], metrics: int, rate_per_series: float, seconds: float, probe: Any, probe_interval: float
) -> tuple[int, int]:
    names = [f"m{m:03d}" for m in range(metrics)]
    series = [(run.log, name) for run in runs for name in names]
    count = len(series)
    rate = rate_per_series * count
    started = time.monotonic()
    logged = probes = 0
    next_probe = started
    while (elapsed := time.monotonic() - started) < seconds:
        due = int(rate * elapsed)
        while logged < due:
            step, index = divmod(logged, count)
            log, name = series[index]
            log(name, step * 0.5)
            logged += 1
        if probe is not None and time.monotonic() >= next_probe:
            probe.log("probe", time.time())
            probes += 1
            next_probe += probe_interval
        time.sleep(TICK_SECONDS)
    return logged, probes
