"""ns per ``run.log(name, float)`` in a tight loop; ``run.flush`` and ``run.complete`` are timed apart."""

from __future__ import annotations

from collections.abc import Callable

from bench.workers import LogFn, log_cost
from producer import Experiment, Workspace
from runstream.config import Settings


def main() -> None:
    workspace = Workspace.from_settings(Settings.from_env())

    def open_run() -> tuple[LogFn, Callable[[], object]]:
        run = Experiment(workspace, "bench-log-cost").start_logging()

        def close() -> None:
            run.flush(120)
            run.complete()

        return run.log, close

    log_cost(open_run)


if __name__ == "__main__":
    main()
