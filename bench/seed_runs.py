"""Many small runs for the runs-list figure, published in runstream's event format (``runstream.events``).

Opening 10,000 runs through the SDK costs a Kafka producer each; the runs
list only needs them stored, so they are written as the SDK would write them:
per run one record with ``run_started``, ``Running``, 5 scalar metrics of 10
points and ``Completed``, keyed by the run id.
"""

from __future__ import annotations

import time
import uuid

from aiokafka import AIOKafkaProducer

from runstream import kafka
from runstream.config import Settings
from runstream.events import Batch, encode_batch, scalars_event

__all__ = ["publish_runs"]


def _events(experiment: str, index: int, now: float) -> list[dict[str, object]]:
    events: list[dict[str, object]] = [
        {"type": "run_started", "time": now, "experiment": experiment, "display_name": f"run {index}", "parent": None},
        {"type": "status", "time": now, "status": "Running", "error": None},
    ]
    for m in range(5):
        values = [index + m + i * 0.1 for i in range(10)]
        events.append(
            scalars_event(
                f"metric_{m}", "float", list(range(10)), [now + i for i in range(10)], list(range(10)), values
            )
        )
    events.append({"type": "status", "time": now + 10, "status": "Completed", "error": None})
    return events


async def publish_runs(settings: Settings, experiment: str, count: int) -> list[str]:
    """``count`` completed runs of ``experiment`` on ``settings.topic``; their ids."""
    topic = settings.topic
    producer = AIOKafkaProducer(**kafka.client_options(settings), linger_ms=20, max_batch_size=1 << 20)
    run_ids = []
    try:
        await kafka.start(producer, settings)
        now = time.time()
        for index in range(count):
            run_id = str(uuid.uuid4())
            batch = Batch(run_id, str(uuid.uuid4()), 1, _events(experiment, index, now + index * 1e-3))
            await producer.send(topic, encode_batch(batch), key=run_id.encode())
            run_ids.append(run_id)
        await producer.flush()
    finally:
        await producer.stop()
    return run_ids
