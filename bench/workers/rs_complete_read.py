"""``run.complete()`` then ``run.get_metrics()``: how long until the read returns everything.

For ``seconds`` it repeats: start a run, log ``points`` floats over five
metrics, then time ``complete()`` and the ``get_metrics()`` after it, and
check that the answer holds every point logged (read-your-writes: the read
waits for ingest rather than answer with part of the run). Emits the
latencies and how many answers were incomplete (there must be none).
"""

from __future__ import annotations

import time

from bench.workers import emit, params
from producer import Experiment, Workspace
from runstream.config import Settings

NAMES = [f"metric_{m}" for m in range(5)]


def main() -> None:
    p = params()
    workspace = Workspace.from_settings(Settings.from_env())
    experiment = Experiment(workspace, "bench-read-your-writes")
    expected = {name: [float(i) for i in range(p["points"]) if i % len(NAMES) == k] for k, name in enumerate(NAMES)}
    totals: list[float] = []
    reads: list[float] = []
    incomplete = 0
    deadline = time.monotonic() + p["seconds"]
    while time.monotonic() < deadline or not totals:
        run = experiment.start_logging(outputs=None)
        for i in range(p["points"]):
            run.log(NAMES[i % len(NAMES)], float(i))
        started = time.perf_counter()
        run.complete()
        completed = time.perf_counter()
        metrics = run.get_metrics()
        done = time.perf_counter()
        totals.append(done - started)
        reads.append(done - completed)
        incomplete += metrics != expected
    emit({"seconds": totals, "read_seconds": reads, "incomplete": incomplete})


if __name__ == "__main__":
    main()
