"""Helpers for the ingest tests (no tests here): build raw batches, read back what is stored."""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from runstream.config import Settings
from runstream.events import Batch, encode_batch, scalars_event

T0 = 1_700_000_000.0


def new_id() -> str:
    return str(uuid.uuid4())


def raw(run: str, session: str, seq: int, *events: dict[str, Any]) -> bytes:
    return encode_batch(Batch(run, session, seq, list(events)))


def started(experiment: str = "exp", time: float = T0, display_name: str | None = "a run", parent: str | None = None):
    return {"type": "run_started", "time": time, "experiment": experiment, "display_name": display_name,
            "parent": parent}


def status(name: str, time: float, error: Any = None) -> dict[str, Any]:
    return {"type": "status", "time": time, "status": name, "error": error}


def scalars(name: str, kind: str, values: list[Any], *, first_step: int = 0, time: float = T0,
            first_ordinal: int = 0) -> dict[str, Any]:
    n = len(values)
    return scalars_event(name, kind, [first_step + i for i in range(n)], [time + i for i in range(n)],  # type: ignore[arg-type]
                         [first_ordinal + i for i in range(n)], values)


async def send(producer: AIOKafkaProducer, topic: str, run: str, values: list[bytes]) -> list[tuple[int, int]]:
    """Produce ``values`` keyed by ``run``; return each record's (partition, offset)."""
    out = []
    for value in values:
        meta = await producer.send_and_wait(topic, value=value, key=run.encode())
        out.append((meta.partition, meta.offset))
    return out


async def points(db: asyncpg.Pool, run: str, name: str) -> list[tuple[int, float, int, Any, Any]]:
    rows = await db.fetch(
        "SELECT p.step, p.time, p.ordinal, p.value, p.text_value FROM points p JOIN series s ON s.id = p.series_id"
        " WHERE s.run_id = $1 AND s.name = $2 ORDER BY p.step, p.ordinal", run, name)
    return [tuple(r) for r in rows]


async def run_row(db: asyncpg.Pool, run: str) -> asyncpg.Record | None:
    return await db.fetchrow("SELECT * FROM runs WHERE id = $1", run)


def same_floats(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(
        (math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b, strict=True))


async def dead_letters(settings: Settings, wanted: set[tuple[int, int]], timeout_ms: int = 30000) -> dict[tuple[int, int], dict[str, Any]]:
    """Read the DLQ from the start until every (partition, offset) in ``wanted`` is found."""
    consumer = AIOKafkaConsumer(settings.dlq_topic, bootstrap_servers=settings.kafka_bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    found: dict[tuple[int, int], dict[str, Any]] = {}
    try:
        deadline = time.monotonic() + timeout_ms / 1000
        while not wanted <= found.keys() and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                for m in messages:
                    headers = {k: v.decode() for k, v in m.headers}
                    key = (int(headers["source_partition"]), int(headers["source_offset"]))
                    if headers["source_topic"] == settings.topic and key in wanted:
                        found[key] = {"value": m.value, **headers}
    finally:
        await consumer.stop()
    return found
