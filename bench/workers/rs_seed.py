"""Seeds the read benchmarks through the SDK, then times ``run.get_metrics()`` once told the data is stored.

Run A: one metric ``series`` of ``series_points`` points. Run B: ``metrics``
metrics of ``points`` points each. Both are completed; the parent waits until
every point is in PostgreSQL, then says go, and this process times
``get_metrics()`` of run B (after one untimed call) ``reps`` times.
"""

from __future__ import annotations

import time
from typing import Any


def seed_and_read(
    env: dict[str, str], series_points: int, metrics: int, points: int, reps: int, out: Any, go: Any
) -> None:
    from producer import Experiment, Workspace
    from runstream.config import Settings

    try:
        workspace = Workspace.from_settings(Settings.from_env(env))
        experiment = Experiment(workspace, "bench-reads")
        series = experiment.start_logging(display_name="series")
        log = series.log
        for i in range(series_points):
            log("series", i * 0.5)
        series.complete()
        wide = experiment.start_logging(display_name="get_metrics")
        names = [f"metric_{m:02d}" for m in range(metrics)]
        log = wide.log
        for i in range(points):
            for name in names:
                log(name, i * 0.5)
        wide.complete()
        out.put({"series_run": series.id, "wide_run": wide.id, "wide_points": metrics * points})
        go.get()
        wide.get_metrics()  # warm-up: connections, plans
        seconds = []
        for _ in range(reps):
            started = time.perf_counter()
            got = wide.get_metrics()
            seconds.append(time.perf_counter() - started)
            if len(got) != metrics or any(len(v) != points for v in got.values()):
                raise RuntimeError(f"get_metrics returned {len(got)} metrics of {[len(v) for v in got.values()][:3]}")
        out.put({"get_metrics_seconds": seconds})
    except BaseException as exc:
        out.put({"error": f"{type(exc).__name__}: {exc}"})
        raise


def seed_series(env: dict[str, str], points: int, out: Any) -> None:
    """One completed run with one metric ``series`` of ``points`` points; puts its id on ``out``."""
    from producer import Experiment, Workspace
    from runstream.config import Settings

    try:
        run = Experiment(Workspace.from_settings(Settings.from_env(env)), "bench-load").start_logging()
        log = run.log
        for i in range(points):
            log("series", i * 0.5)
        run.complete()
        out.put({"run_id": run.id, "points": points})
    except BaseException as exc:
        out.put({"error": f"{type(exc).__name__}: {exc}"})
        raise


def seed_compared(env: dict[str, str], runs: int, points: int, out: Any) -> None:
    """``runs`` completed runs, each with a metric ``loss`` of ``points`` points; puts their ids on ``out``."""
    import math

    from producer import Experiment, Workspace
    from runstream.config import Settings

    try:
        experiment = Experiment(Workspace.from_settings(Settings.from_env(env)), "bench-charts")
        ids = []
        for r in range(runs):
            run = experiment.start_logging(display_name=f"run {r}")
            log = run.log
            for i in range(points):
                # A falling loss with noise the chart must keep (a band), different per run.
                log("loss", (1 + r / 10) / math.sqrt(i + 1) + 0.01 * math.sin(i * (r + 1)))
            run.complete()
            ids.append(str(run.id))
        out.put({"run_ids": ids, "points": runs * points})
    except BaseException as exc:
        out.put({"error": f"{type(exc).__name__}: {exc}"})
        raise
