"""ns per ``wandb.log({name: float})`` in offline mode (no network), excluding ``finish``.

At its best: console capture, system metrics sampling and machine/git
metadata off, so that nothing but logging runs beside the loop.
"""

from __future__ import annotations

import os
import tempfile

os.environ.update(
    {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DISABLE_GIT": "true",
        "WANDB_DISABLE_CODE": "true",
    }
)

import wandb  # noqa: E402

from bench.workers import Opened, log_cost  # noqa: E402


def log(name: str, value: float) -> None:
    wandb.log({name: value})


def main() -> None:
    settings = wandb.Settings(console="off", x_disable_stats=True, x_disable_meta=True, x_disable_machine_info=True)
    with tempfile.TemporaryDirectory(prefix="bench-wandb-") as directory:

        def open_run() -> Opened:
            wandb.init(project="bench-log-cost", mode="offline", dir=directory, settings=settings)
            return log, wandb.log, wandb.finish

        log_cost(open_run)


if __name__ == "__main__":
    main()
