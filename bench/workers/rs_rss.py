"""Peak RSS of a process logging ``points`` points through the SDK (20 metrics, round-robin).

``kafka``: ``down`` points the SDK at a port where nothing listens (Kafka
stopped: the SDK must hold, spool or refuse, within bounded memory); ``up``
uses the real broker and flushes at the end. Reports VmHWM after logging
and after the flush, and what the SDK raised, if anything.
"""

from __future__ import annotations

import os
import time

from bench.workers import emit, params, peak_rss_bytes


def main() -> None:
    p = params()
    baseline = peak_rss_bytes()
    from producer import Experiment, LoggingOptions, Workspace
    from runstream.config import Settings

    settings = Settings.from_env()
    options = LoggingOptions(close_timeout_seconds=5.0) if p["kafka"] == "down" else None
    workspace = Workspace.from_settings(settings, options=options)
    imported = peak_rss_bytes()
    names = [f"metric_{m:02d}" for m in range(20)]
    logged, error = 0, None
    started = time.perf_counter()
    try:
        run = Experiment(workspace, "bench-rss").start_logging()
        log = run.log
        for step in range(p["points"] // 20):
            value = step * 0.5
            for name in names:
                log(name, value)
            logged += 20
    except Exception as exc:
        error = f"{type(exc).__name__} after {logged:,} points: {str(exc)[:200]}"
    log_seconds = time.perf_counter() - started
    after_log = peak_rss_bytes()
    flush_error = None
    try:
        run.flush(5.0 if p["kafka"] == "down" else 300.0)
    except Exception as exc:
        flush_error = f"{type(exc).__name__}: {str(exc)[:200]}"
    emit(
        {
            "points": logged,
            "error": error,
            "flush_error": flush_error,
            "log_seconds": log_seconds,
            "rss_before_import_mb": baseline / 2**20,
            "rss_after_import_mb": imported / 2**20,
            "peak_rss_after_log_mb": after_log / 2**20,
            "peak_rss_mb": peak_rss_bytes() / 2**20,
            "stats": run.stats(),
        }
    )
    os._exit(0)  # what happens to unsent points at exit is not this figure's business


if __name__ == "__main__":
    main()
