"""Helpers for the ingest tests (no tests here): build raw batches, read back what is stored."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from ops.stack import free_port
from ops.stack._kafka import KafkaBroker
from query._points import LazyPointColumns, read_run_points
from runstream.config import Settings
from runstream.events import Batch, encode_batch, run_started_event, scalars_event, status_event
from runstream.kafka import client_options

T0 = 1_700_000_000.0
_NO_POINTS = LazyPointColumns(np.empty(0, np.int64), np.empty(0), np.empty(0, np.int64), np.empty(0))


def new_id() -> str:
    return str(uuid.uuid4())


def raw(run: str, session: str, seq: int, *events: dict[str, Any]) -> bytes:
    return encode_batch(Batch(run, session, seq, list(events)))


def started(experiment: str = "exp", time: float = T0, display_name: str | None = "a run", parent: str | None = None):
    return run_started_event(time, experiment, display_name, parent)


def status(name: str, time: float, error: Any = None) -> dict[str, Any]:
    return status_event(time, name, error)


def scalars(
    name: str, kind: str, values: list[Any], *, first_step: int = 0, time: float = T0, first_ordinal: int = 0
) -> dict[str, Any]:
    n = len(values)
    return scalars_event(
        name,
        kind,
        [first_step + i for i in range(n)],
        [time + i for i in range(n)],  # type: ignore[arg-type]
        [first_ordinal + i for i in range(n)],
        values,
    )


async def send(producer: AIOKafkaProducer, topic: str, run: str, values: list[bytes]) -> list[tuple[int, int]]:
    """Produce ``values`` keyed by ``run``; return each record's (partition, offset)."""
    out = []
    for value in values:
        meta = await producer.send_and_wait(topic, value=value, key=run.encode())
        out.append((meta.partition, meta.offset))
    return out


async def points(db: asyncpg.Pool, run: str, name: str) -> list[tuple[int, float, int, Any, Any]]:
    """(step, time, ordinal, value, text) of each stored point of the metric, by step then ordinal.

    ``value`` is None for a text point and ``text`` None for a number.
    """
    stored = (await read_run_points(db, run, name=name)).get(name)
    if stored is None:
        return []
    by_step = stored.take(np.lexsort((stored.ordinals, stored.steps)))
    text = by_step.values.dtype == object
    values = by_step.values.tolist()
    return list(
        zip(
            by_step.steps.tolist(),
            by_step.times.tolist(),
            by_step.ordinals.tolist(),
            [None] * len(values) if text else values,
            values if text else [None] * len(values),
            strict=True,
        )
    )


async def run_row(db: asyncpg.Pool, run: str) -> asyncpg.Record | None:
    return await db.fetchrow("SELECT * FROM runs WHERE id = $1", run)


def same_floats(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all((math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b, strict=True))


async def dead_letters(
    settings: Settings, wanted: set[tuple[int, int]], timeout_ms: int = 30000
) -> dict[tuple[int, int], dict[str, Any]]:
    """Read the DLQ from the start until every (partition, offset) in ``wanted`` is found."""
    consumer = AIOKafkaConsumer(
        settings.dlq_topic,
        **client_options(settings),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
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


class Stream:
    """A deterministic stream of float batches over several runs, and its check."""

    def __init__(self, runs: int, batches_per_run: int, points_per_batch: int) -> None:
        self.runs = [new_id() for _ in range(runs)]
        self.sessions = [new_id() for _ in range(runs)]
        self.batches_per_run = batches_per_run
        self.points_per_batch = points_per_batch

    @property
    def total(self) -> int:
        return len(self.runs) * self.batches_per_run * self.points_per_batch

    def records(self) -> list[tuple[str, bytes]]:
        """(key, value) in an order that interleaves the runs."""
        out = []
        n = self.points_per_batch
        for b in range(self.batches_per_run):
            for i, (run, session) in enumerate(zip(self.runs, self.sessions, strict=True)):
                events: list[dict[str, Any]] = [started(f"stream-{i}")] if b == 0 else []
                steps = range(b * n, (b + 1) * n)
                events.append(
                    scalars_event(
                        "loss", "float", list(steps), [T0 + s for s in steps], list(steps), [s * 0.5 + i for s in steps]
                    )
                )
                out.append((run, raw(run, session, b + 1, *events)))
        return out

    async def stored(self, db: asyncpg.Pool) -> int:
        return int(
            await db.fetchval(
                "SELECT coalesce(sum(c.n), 0) FROM point_chunks c JOIN series s ON s.id = c.series_id"
                " WHERE s.run_id = ANY($1::uuid[])",
                self.runs,
            )
        )

    async def check_exactly_once(self, db: asyncpg.Pool) -> None:
        n = self.batches_per_run * self.points_per_batch
        for i, run in enumerate(self.runs):
            stored = await read_run_points(db, run)
            loss = stored.get("loss") or _NO_POINTS
            got = {
                "n": len(loss),
                "steps": len(np.unique(loss.steps)),
                "lo": int(loss.steps.min(initial=n)),
                "hi": int(loss.steps.max(initial=-1)),
                "offset_sum": float((loss.values - loss.steps * 0.5).sum()),
                "series": len(stored),
            }
            assert got == {"n": n, "steps": n, "lo": 0, "hi": n - 1, "offset_sum": float(i * n), "series": 1}
        assert await db.fetchval("SELECT count(*) FROM runs WHERE id = ANY($1::uuid[])", self.runs) == len(self.runs)
        assert await db.fetchval(
            "SELECT count(*) FROM status_history WHERE run_id = ANY($1::uuid[])", self.runs
        ) == len(self.runs)


@contextlib.asynccontextmanager
async def private_broker(
    settings: Settings, home: Path, name: str, *, partitions: int
) -> AsyncIterator[tuple[KafkaBroker, Settings]]:
    """A Kafka broker of the test's own (the stack's code), for tests that stop or wipe it: free ports,
    its files under ``home``, topics and group named ``name``; the session's settings otherwise."""
    # As the stack makes one: its own SCRAM user, its secrets under its home.
    local = Settings.from_env(
        {
            "RUNSTREAM_HOME": str(home),
            "RUNSTREAM_KAFKA_PORT": str(free_port()),
            "RUNSTREAM_KAFKA_CONTROLLER_PORT": str(free_port()),
        }
    )
    mine = dataclasses.replace(
        settings,
        home=home,
        kafka_port=local.kafka_port,
        kafka_controller_port=local.kafka_controller_port,
        kafka_bootstrap=local.kafka_bootstrap,
        kafka_security=local.kafka_security,
        topic=f"{name}.events",
        dlq_topic=f"{name}.dead-letter",
        group_id=name,
        topic_partitions=partitions,
        ingest_metrics_port=free_port(),
    )
    kafka = KafkaBroker(mine)
    await asyncio.to_thread(kafka.start)
    try:
        yield kafka, mine
    finally:
        await asyncio.to_thread(kafka.stop)


async def produce_all(settings: Settings, topic: str, records: list[tuple[str, bytes]]) -> None:
    async with AIOKafkaProducer(
        **client_options(settings), acks="all", linger_ms=5, max_request_size=16 * 1024 * 1024
    ) as producer:
        futures = [await producer.send(topic, value=value, key=key.encode()) for key, value in records]
        for future in futures:
            await future


class TcpProxy:
    """A TCP forwarder the test can cut, to take PostgreSQL away from a worker for real."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def cut(self) -> None:
        """Refuse new connections and break the open ones."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        if self._server is None:  # cut while this connection was being made: it must not outlive the cut
            writer.transport.abort()
            up_writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
