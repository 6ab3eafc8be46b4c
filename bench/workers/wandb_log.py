"""ns per ``wandb.log({name: float})`` in offline mode (no network), excluding ``finish``.

At its best: console capture, system metrics sampling and machine/git
metadata off, so that nothing but logging runs beside the loop.
"""

from __future__ import annotations

import os
import tempfile
import time

os.environ.update(
    {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DISABLE_GIT": "true",
        "WANDB_DISABLE_CODE": "true",
    }
)

import wandb  # noqa: E402

from bench.workers import emit, loop_overhead_ns, params, peak_rss_bytes  # noqa: E402


def main() -> None:
    p = params()
    calls, reps, warmup = p["calls"], p["reps"], p["warmup"]
    settings = wandb.Settings(console="off", x_disable_stats=True, x_disable_meta=True, x_disable_machine_info=True)
    per_call, finish_seconds = [], []
    with tempfile.TemporaryDirectory(prefix="bench-wandb-") as directory:
        for _ in range(reps):
            wandb.init(project="bench-log-cost", mode="offline", dir=directory, settings=settings)
            for i in range(warmup):
                wandb.log({"loss": i * 0.5})
            started = time.perf_counter_ns()
            for i in range(calls):
                wandb.log({"loss": i * 0.5})
            per_call.append((time.perf_counter_ns() - started) / calls)
            finished = time.perf_counter()
            wandb.finish()
            finish_seconds.append(time.perf_counter() - finished)
    emit(
        {
            "ns_per_call": per_call,
            "finish_seconds": finish_seconds,
            "loop_overhead_ns": loop_overhead_ns(calls),
            "peak_rss_bytes": peak_rss_bytes(),
        }
    )


if __name__ == "__main__":
    main()
