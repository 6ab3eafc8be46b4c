"""ns per ``run.log(name, float)`` in a tight loop, excluding the flush that follows."""

from __future__ import annotations

import time

from bench.workers import emit, loop_overhead_ns, params, peak_rss_bytes
from producer import Experiment, Workspace
from runstream.config import Settings


def main() -> None:
    p = params()
    calls, reps, warmup = p["calls"], p["reps"], p["warmup"]
    workspace = Workspace.from_settings(Settings.from_env())
    per_call, flush_seconds = [], []
    for _ in range(reps):
        run = Experiment(workspace, "bench-log-cost").start_logging()
        log = run.log
        for i in range(warmup):
            log("loss", i * 0.5)
        started = time.perf_counter_ns()
        for i in range(calls):
            log("loss", i * 0.5)
        per_call.append((time.perf_counter_ns() - started) / calls)
        flushed = time.perf_counter()
        run.flush(120)
        run.complete()
        flush_seconds.append(time.perf_counter() - flushed)
    emit(
        {
            "ns_per_call": per_call,
            "flush_and_complete_seconds": flush_seconds,
            "loop_overhead_ns": loop_overhead_ns(calls),
            "peak_rss_bytes": peak_rss_bytes(),
        }
    )


if __name__ == "__main__":
    main()
