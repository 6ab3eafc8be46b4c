"""Seeded digits training runs logged through the SDK: the realistic corpus of the storage figure.

Params: ``digits`` (the CSV :func:`bench.corpus.digits_csv` found), ``runs``,
``epochs``, ``seed`` (run i trains with ``seed + i``). Each run is opened,
trained with one ``run.log_metrics`` of the step's five metrics per step (the
dict-logging call of issue 18, as a training loop would call it), flushed and
completed in turn. Emits the run ids, the points logged, the seconds spent
and each run's last metrics (that the model learnt is the check that the
curves are real ones).
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.corpus import METRICS, Training, load_digits, train
from bench.workers import emit, params
from producer import Experiment, Workspace
from runstream.config import Settings


def main() -> None:
    p = params()
    data = load_digits(Path(p["digits"]))
    experiment = Experiment(Workspace.from_settings(Settings.from_env()), "bench-storage-corpus")
    run_ids, last, steps = [], [], 0
    started = time.perf_counter()
    for i in range(p["runs"]):
        config = Training(seed=p["seed"] + i, epochs=p["epochs"])
        run = experiment.start_logging(outputs=None)
        last.append(train(data, config, run.log_metrics))
        run.flush(600)
        run.complete()
        run_ids.append(run.id)
        steps += config.steps(len(data[1]))
    emit(
        {
            "run_ids": run_ids,
            "steps": steps,
            "points": steps * len(METRICS),
            "seconds": time.perf_counter() - started,
            "last": last,
        }
    )


if __name__ == "__main__":
    main()
