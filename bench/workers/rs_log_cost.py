"""ns per ``run.log(name, float)`` and per value of ``run.log_metrics(dict)``; flush and complete timed apart."""

from __future__ import annotations

from bench.workers import Opened, log_cost
from producer import Experiment, Workspace
from runstream.config import Settings


def main() -> None:
    workspace = Workspace.from_settings(Settings.from_env())

    def open_run() -> Opened:
        run = Experiment(workspace, "bench-log-cost").start_logging()

        def close() -> None:
            run.flush(120)
            run.complete()

        return run.log, run.log_metrics, close

    log_cost(open_run)


if __name__ == "__main__":
    main()
