"""runstream ingest: the Kafka -> PostgreSQL consumer.

Run one worker with ``python -m ingest`` (settings from ``RUNSTREAM_*``), or
embed one::

    async with IngestWorker(Settings.from_env()) as worker:
        await worker.wait()
"""

from ._admin import DroppedRuns, drop_experiment, drop_expired_runs
from ._errors import IngestConfigError, IngestError, IngestStartError, IngestStateError, UnknownExperimentError
from ._options import IngestOptions
from ._packing import PackedChunks, pack_raw_chunks
from ._worker import IngestWorker, run_worker

__all__ = [
    "DroppedRuns",
    "IngestConfigError",
    "IngestError",
    "IngestOptions",
    "IngestStartError",
    "IngestStateError",
    "IngestWorker",
    "PackedChunks",
    "UnknownExperimentError",
    "drop_experiment",
    "drop_expired_runs",
    "pack_raw_chunks",
    "run_worker",
]
