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

from bench.workers.rs_paced import log_paced


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
        series = [(run.log, f"m{m:03d}") for run in opened for m in range(metrics)]
        logged, probes = log_paced(
            series, rate_per_series * len(series), seconds, probe.log if probe else None, probe_interval
        )
        logged_at = time.time()
        for run in [*opened, *([probe] if probe else [])]:
            run.flush(600)
            run.complete()
        out.put({"points": logged, "probes": probes, "logged_at": logged_at, "run_ids": [r.id for r in opened]})
    except BaseException as exc:  # the parent must hear about it, not wait forever
        out.put({"error": f"{type(exc).__name__}: {exc}"})
        raise
