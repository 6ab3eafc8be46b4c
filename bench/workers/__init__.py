"""Processes that measure one thing each and print one result line (see :func:`emit`).

runstream's workers run in the project's environment; the MLflow and W&B ones
in the benchmark's own (``bench/.venv``), so they import nothing of runstream.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

RESULT_MARK = "BENCH-RESULT "

#: ``log(name, value)``: runstream's ``run.log`` or a baseline's call wrapped to that shape.
LogFn = Callable[[str, float], object]
#: ``log_metrics({name: value, ...})``: runstream's ``run.log_metrics`` or a baseline's dict call.
LogDictFn = Callable[[dict[str, float]], object]
#: A started run: its log function, its dict-logging function and what closes it.
Opened = tuple[LogFn, LogDictFn, Callable[[], object]]
#: Metrics per dict in the dict-logging loop (issue 18: a 20-metric dict).
DICT_METRICS = 20


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


def ns_per_call(log: LogFn, calls: int, warmup: int) -> float:
    """ns per ``log("loss", i * 0.5)`` over ``calls`` timed calls, after ``warmup`` untimed ones.

    The one loop every logging-cost figure runs, runstream's and the
    baselines' alike, so that none of them is timed differently.
    """
    for i in range(warmup):
        log("loss", i * 0.5)
    started = time.perf_counter_ns()
    for i in range(calls):
        log("loss", i * 0.5)
    return (time.perf_counter_ns() - started) / calls


def ns_per_value(log_metrics: LogDictFn, calls: int, warmup: int) -> float:
    """ns per value of ``log_metrics(d)`` with a dict of :data:`DICT_METRICS` floats, over ``calls`` timed calls.

    One dict, built before the loop as a training step builds its own; each
    call changes one of its values (``i * 0.5``), as :func:`ns_per_call` does.
    """
    metrics = {f"metric_{m:02d}": 0.5 for m in range(DICT_METRICS)}
    for i in range(warmup):
        metrics["metric_00"] = i * 0.5
        log_metrics(metrics)
    started = time.perf_counter_ns()
    for i in range(calls):
        metrics["metric_00"] = i * 0.5
        log_metrics(metrics)
    return (time.perf_counter_ns() - started) / (calls * DICT_METRICS)


def log_cost(open_run: Callable[[], Opened]) -> None:
    """The logging-cost measurement, the same for runstream and the baselines; emits its result.

    ``open_run`` starts a run and returns its log and dict-logging functions
    and what closes the run (flush, end, finish). Per repetition: open a run,
    time the ``log`` loop, then (with ``dict_calls``) the dict loop, then time
    the close apart, since the figure is the cost inside the training loop.
    """
    p = params()
    dict_calls = p.get("dict_calls", 0)
    per_call, per_value, close_seconds = [], [], []
    for _ in range(p["reps"]):
        log, log_metrics, close = open_run()
        per_call.append(ns_per_call(log, p["calls"], p["warmup"]))
        if dict_calls:
            per_value.append(ns_per_value(log_metrics, dict_calls, max(1, p["warmup"] // DICT_METRICS)))
        closing = time.perf_counter()
        close()
        close_seconds.append(time.perf_counter() - closing)
    emit(
        {
            "ns_per_call": per_call,
            "ns_per_value": per_value,
            "close_seconds": close_seconds,
            "loop_overhead_ns": loop_overhead_ns(p["calls"]),
            "dict_loop_overhead_ns": ns_per_value(lambda metrics: None, dict_calls, 0) if dict_calls else None,
            "peak_rss_bytes": peak_rss_bytes(),
        }
    )


def loop_overhead_ns(calls: int) -> float:
    """ns per iteration of the same loop with a no-op call, to read the figures against."""

    def noop(name: str, value: float) -> None:
        return None

    return ns_per_call(noop, calls, 0)
