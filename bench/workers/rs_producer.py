"""One producer process of the end-to-end benchmarks, started with multiprocessing (spawn).

It opens its runs, waits at the barrier with the others, then logs
``steps`` points of each of ``metrics`` metrics of each run, round-robin (the
shape of a training loop: every metric of every run once per step), one
``run.log`` per point or, with ``dicts``, one ``run.log_metrics`` per run and
step (its dict built in the loop), flushes and completes its runs, and
reports its timings on the queue.
"""

from __future__ import annotations

import time
from typing import Any


def produce(
    env: dict[str, str],
    experiment: str,
    runs: int,
    metrics: int,
    steps: int,
    ready: Any,
    results: Any,
    dicts: bool = False,
) -> None:
    from bench.workers import peak_rss_bytes
    from producer import Experiment, Workspace
    from runstream.config import Settings

    try:
        workspace = Workspace.from_settings(Settings.from_env(env))
        opened = [Experiment(workspace, experiment).start_logging() for _ in range(runs)]
        names = [f"metric_{m:02d}" for m in range(metrics)]
        ready.wait()
        first = time.time()
        (_log_dicts if dicts else _log_points)(opened, names, steps)
        logged = time.time()
        for run in opened:
            run.flush(600)
        flushed = time.time()
        for run in opened:
            run.complete()
        results.put(
            {
                "run_ids": [run.id for run in opened],
                "points": runs * metrics * steps,
                "first_log": first,
                "logged": logged,
                "flushed": flushed,
                "completed": time.time(),
                "peak_rss_bytes": peak_rss_bytes(),
                "stats": [run.stats() for run in opened[:1]],
            }
        )
    except BaseException as exc:  # the parent must hear about it, not wait forever
        results.put({"error": f"{type(exc).__name__}: {exc}"})
        raise


def _log_points(runs: list[Any], names: list[str], steps: int) -> None:
    logs = [run.log for run in runs]
    for step in range(steps):
        value = step * 0.5
        for log in logs:
            for name in names:
                log(name, value)


def _log_dicts(runs: list[Any], names: list[str], steps: int) -> None:
    log_metrics = [run.log_metrics for run in runs]
    for step in range(steps):
        value = step * 0.5
        for log in log_metrics:
            log(dict.fromkeys(names, value))
