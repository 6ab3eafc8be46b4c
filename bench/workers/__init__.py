"""Processes that measure one thing each and print one result line (see :func:`emit`).

runstream's workers run in the project's environment; the MLflow and W&B ones
in the benchmark's own (``bench/.venv``), so they import nothing of runstream.
"""

from __future__ import annotations

import json
import sys
from typing import Any

RESULT_MARK = "BENCH-RESULT "


def params() -> dict[str, Any]:
    return dict(json.loads(sys.argv[1])) if len(sys.argv) > 1 else {}


def emit(result: dict[str, Any]) -> None:
    sys.stdout.flush()
    print(RESULT_MARK + json.dumps(result), flush=True)


def peak_rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def loop_overhead_ns(calls: int) -> float:
    """ns per iteration of the same loop with a no-op call, to read the figures against."""
    import time

    def noop(name: str, value: float) -> None:
        return None

    started = time.perf_counter_ns()
    for i in range(calls):
        noop("loss", i * 0.5)
    return (time.perf_counter_ns() - started) / calls
