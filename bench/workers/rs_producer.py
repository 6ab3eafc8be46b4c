"""One producer process of the end-to-end benchmarks, started with multiprocessing (spawn).

It opens its runs, waits at the barrier with the others, then logs
``steps`` points of each of ``metrics`` metrics of each run, round-robin (the
shape of a training loop: every metric of every run once per step), flushes
and completes its runs, and reports its timings on the queue.
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
) -> None:
    from bench.workers import peak_rss_bytes
    from producer import Experiment, Workspace
    from runstream.config import Settings

    try:
        workspace = Workspace.from_settings(Settings.from_env(env))
        opened = [Experiment(workspace, experiment).start_logging() for _ in range(runs)]
        names = [f"metric_{m:02d}" for m in range(metrics)]
        logs = [run.log for run in opened]
        ready.wait()
        first = time.time()
        for step in range(steps):
            value = step * 0.5
            for log in logs:
                for name in names:
                    log(name, value)
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
