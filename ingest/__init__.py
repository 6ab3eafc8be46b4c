"""runstream ingest: the Kafka -> PostgreSQL consumer.

Run one worker with ``python -m ingest`` (settings from ``RUNSTREAM_*``), or
embed one::

    async with IngestWorker(Settings.from_env()) as worker:
        await worker.wait()
"""

from ._admin import DroppedExperiment, drop_experiment
from ._errors import IngestConfigError, IngestError, IngestStartError, IngestStateError, UnknownExperimentError
from ._options import IngestOptions
from ._worker import IngestWorker, run_worker

__all__ = [
    "DroppedExperiment",
    "IngestConfigError",
    "IngestError",
    "IngestOptions",
    "IngestStartError",
    "IngestStateError",
    "IngestWorker",
    "UnknownExperimentError",
    "drop_experiment",
    "run_worker",
]
