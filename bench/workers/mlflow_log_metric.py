"""ns per ``mlflow.log_metric(name, float)`` (and per value of ``log_metrics(dict)``), async, against a server.

Asynchronous logging at its best: ``MLFLOW_ENABLE_ASYNC_LOGGING=true`` and
``MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS=1`` (without it every call is its own
request), ``synchronous=False`` on every call. The drain at ``end_run`` is not
part of the timed loop, as the flush is not for runstream.
"""

from __future__ import annotations

import os

os.environ["MLFLOW_ENABLE_ASYNC_LOGGING"] = "true"
os.environ["MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS"] = "1"

import mlflow  # noqa: E402

from bench.workers import Opened, log_cost, params  # noqa: E402


def log(name: str, value: float) -> None:
    mlflow.log_metric(name, value, synchronous=False)


def log_metrics(metrics: dict[str, float]) -> None:
    mlflow.log_metrics(metrics, synchronous=False)


def open_run() -> Opened:
    mlflow.start_run()
    return log, log_metrics, mlflow.end_run


def main() -> None:
    p = params()
    mlflow.set_tracking_uri(p["tracking_uri"])
    mlflow.set_experiment("bench-log-cost")
    log_cost(open_run)


if __name__ == "__main__":
    main()
