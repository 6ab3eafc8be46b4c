"""ns per ``mlflow.log_metric(name, float)`` with asynchronous logging, against a tracking server.

Asynchronous logging at its best: ``MLFLOW_ENABLE_ASYNC_LOGGING=true`` and
``MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS=1`` (without it every call is its own
request), ``synchronous=False`` on every call. The drain at ``end_run`` is not
part of the timed loop, as the flush is not for runstream.
"""

from __future__ import annotations

import os
import time

os.environ["MLFLOW_ENABLE_ASYNC_LOGGING"] = "true"
os.environ["MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS"] = "1"

import mlflow  # noqa: E402

from bench.workers import emit, loop_overhead_ns, params, peak_rss_bytes  # noqa: E402


def main() -> None:
    p = params()
    calls, reps, warmup = p["calls"], p["reps"], p["warmup"]
    mlflow.set_tracking_uri(p["tracking_uri"])
    mlflow.set_experiment("bench-log-cost")
    per_call, drain_seconds = [], []
    for _ in range(reps):
        mlflow.start_run()
        for i in range(warmup):
            mlflow.log_metric("loss", i * 0.5, synchronous=False)
        started = time.perf_counter_ns()
        for i in range(calls):
            mlflow.log_metric("loss", i * 0.5, synchronous=False)
        per_call.append((time.perf_counter_ns() - started) / calls)
        drained = time.perf_counter()
        mlflow.end_run()
        drain_seconds.append(time.perf_counter() - drained)
    emit(
        {
            "ns_per_call": per_call,
            "end_run_seconds": drain_seconds,
            "loop_overhead_ns": loop_overhead_ns(calls),
            "peak_rss_bytes": peak_rss_bytes(),
        }
    )


if __name__ == "__main__":
    main()
