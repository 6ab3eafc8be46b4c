"""Kafka stopped in the middle of a run: training goes on, every point arrives once, in order.

The shared broker cannot be stopped, so this test starts a broker of its own
(the stack's code, its own ports and data directory), stops it for
``OUTAGE_SECONDS`` while a run logs, then starts it again on the same data.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from ops.stack import free_port
from ops.stack._kafka import KafkaBroker
from producer import Experiment, LoggingOptions, Workspace
from runstream.config import Settings
from runstream.events import Batch, decode_batch, encode_batch, scalars_event
from runstream.kafka import ensure_topics
from tests.support import eventually
from tests.test_producer import consume_run, events_of, points

OUTAGE_SECONDS = 20.0


@pytest_asyncio.fixture
async def broker(tmp_path: Path) -> AsyncIterator[tuple[KafkaBroker, Settings]]:
    settings = Settings.from_env(
        {
            "RUNSTREAM_HOME": str(tmp_path / "home"),
            "RUNSTREAM_KAFKA_PORT": str(free_port()),
            "RUNSTREAM_KAFKA_CONTROLLER_PORT": str(free_port()),
            "RUNSTREAM_TOPIC": "outage.events",
            "RUNSTREAM_TOPIC_PARTITIONS": "2",
        }
    )
    kafka = KafkaBroker(settings)
    await asyncio.to_thread(kafka.start)
    try:
        await ensure_topics(settings, {settings.topic: settings.topic_partitions})
        yield kafka, settings
    finally:
        await asyncio.to_thread(kafka.stop)


async def test_kafka_down_for_twenty_seconds_loses_and_duplicates_nothing(
    broker: tuple[KafkaBroker, Settings],
) -> None:
    kafka, settings = broker
    options = LoggingOptions(request_timeout_seconds=2.0, spill_after_seconds=1.0, max_buffered_points=50_000)
    run = Experiment(Workspace.from_settings(settings, options=options), "outage").start_logging(outputs=None)
    stop = threading.Event()
    logged = [0]
    slowest_call = [0.0]

    def train() -> None:
        i = 0
        while not stop.is_set():
            started = time.monotonic()
            run.log("x", float(i))
            slowest_call[0] = max(slowest_call[0], time.monotonic() - started)
            i += 1
            logged[0] = i
            if i % 100 == 0:
                time.sleep(0.005)  # ~20,000 points/s: a training loop, not a benchmark

    trainer = threading.Thread(target=train)
    trainer.start()
    try:
        await eventually(lambda: _value(logged[0]), lambda n: n > 20_000, what="logging under way")
        await asyncio.to_thread(kafka.stop)
        down_at = time.monotonic()
        await eventually(
            lambda: _value(run.stats()["spooled_records"]), lambda n: n > 0, what="spooling", timeout_seconds=60
        )
        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))  # the outage itself
        logged_during_outage = logged[0]
        await asyncio.to_thread(kafka.start)
        await eventually(
            lambda: _value(run.stats()),
            lambda s: s["replayed_records"] == s["spooled_records"] and s["spool_left"] is None,
            what="spool replayed",
            timeout_seconds=120,
        )
    finally:
        stop.set()
        trainer.join()
    run.complete(timeout_seconds=60)

    # Training never stalled for long: log() at most waited for memory, never for Kafka.
    assert slowest_call[0] < 5.0
    assert logged_during_outage > 20_000
    stats = run.stats()
    assert stats["spooled_records"] > 0 and stats["spool_left"] is None and stats["pending"] == 0
    unique = once_in_order(await consume_run(settings, run.id, timeout_seconds=120))
    assert points(events_of(unique), "x") == [(i, i, float(i)) for i in range(logged[0])]


def once_in_order(batches: list[Batch]) -> list[Batch]:
    """The first copy of each batch, checking that the first copies run seq 1, 2, 3... in partition order.

    A record whose acknowledgement was lost (an outage, a stall, a spill while it was
    in flight) may be on the log twice; it is then the same batch with the same seq,
    which ingest drops.
    """
    first: dict[int, list[dict[str, Any]]] = {}
    for batch in batches:
        events = _comparable(batch.events)
        assert first.setdefault(batch.seq, events) == events
    assert list(first) == list(range(1, len(first) + 1))
    return [b for b in batches if first.pop(b.seq, None) is not None]


def _comparable(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Decoded columns are numpy arrays, whose ``==`` is element-wise; lists compare whole."""
    return [{k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in e.items()} for e in events]


def test_once_in_order_keeps_the_first_copy_of_a_batch_sent_twice() -> None:
    run, session = str(uuid.uuid4()), str(uuid.uuid4())

    def record(seq: int, first: int) -> bytes:
        steps = list(range(first, first + 3))
        event = scalars_event("x", "float", steps, [0.0] * 3, steps, [float(i) for i in steps])
        return encode_batch(Batch(run, session, seq, [event]))

    one, two = record(1, 0), record(2, 3)
    batches = [decode_batch(r) for r in (one, two, two, one)]
    unique = once_in_order(batches)
    assert [b.seq for b in unique] == [1, 2]
    assert points(events_of(unique), "x") == [(i, i, float(i)) for i in range(6)]
    with pytest.raises(AssertionError):
        once_in_order([decode_batch(one), decode_batch(record(1, 100))])  # same seq, other points


async def _value(value: object) -> object:
    return value


async def test_a_frozen_broker_holds_records_in_flight_then_nothing_is_lost(
    broker: tuple[KafkaBroker, Settings],
) -> None:
    """SIGSTOP keeps the connections open and answers nothing: sends hang in flight, which
    an idempotent producer would retry forever. The SDK times them out, spools, and replays."""
    kafka, settings = broker
    pid = kafka.pid()
    assert pid is not None
    options = LoggingOptions(request_timeout_seconds=1.0, spill_after_seconds=0.5, flush_interval_seconds=0.05)
    run = Experiment(Workspace.from_settings(settings, options=options), "frozen").start_logging(outputs=None)
    for i in range(1_000):
        run.log("x", float(i))
    run.flush(30)
    os.kill(pid, signal.SIGSTOP)
    try:
        for i in range(1_000, 3_000):
            run.log("x", float(i))
        await eventually(lambda: _value(run.stats()), lambda s: s["spooled_records"] > 0, what="spooling")
        assert run.stats()["timeouts"] >= 1
        for i in range(3_000, 4_000):
            run.log("x", float(i))
    finally:
        os.kill(pid, signal.SIGCONT)
    run.complete(timeout_seconds=60)
    stats = run.stats()
    assert stats["spool_left"] is None and stats["replayed_records"] == stats["spooled_records"]
    unique = once_in_order(await consume_run(settings, run.id, timeout_seconds=120))
    assert points(events_of(unique), "x") == [(i, i, float(i)) for i in range(4_000)]


async def test_a_full_buffer_spills_to_disk_instead_of_waiting_for_a_stalled_kafka(
    broker: tuple[KafkaBroker, Settings],
) -> None:
    """Kafka stalls (SIGSTOP) and neither its timeout nor spill_after_seconds has passed:
    the buffer fills, and the caller's wait for room makes the sender spill to the spool
    at once. log() blocks only for that spill, memory stays at the bound, nothing is lost."""
    kafka, settings = broker
    pid = kafka.pid()
    assert pid is not None
    bound = 2_000
    options = LoggingOptions(
        flush_points=500,
        max_buffered_points=bound,
        buffer_timeout_seconds=20.0,
        # Far beyond the test: only the full buffer can send the session to the spool.
        request_timeout_seconds=60.0,
        spill_after_seconds=60.0,
    )
    run = Experiment(Workspace.from_settings(settings, options=options), "pressure").start_logging(outputs=None)
    run.log("x", 0.0)
    run.flush(30)
    os.kill(pid, signal.SIGSTOP)
    slowest_call = 0.0
    most_pending = 0
    try:
        for i in range(1, 30_000):
            started = time.monotonic()
            run.log("x", float(i))
            slowest_call = max(slowest_call, time.monotonic() - started)
            if i % 100 == 0:
                most_pending = max(most_pending, run.stats()["pending"])
        stats = run.stats()
    finally:
        os.kill(pid, signal.SIGCONT)
    assert stats["pressure_spills"] >= 1 and stats["blocked_calls"] >= 1 and stats["spooled_records"] > 0
    assert stats["buffer_full_errors"] == 0 and stats["timeouts"] == 0
    assert most_pending <= bound
    assert slowest_call < options.buffer_timeout_seconds  # a spill, not a wait for Kafka
    assert stats["blocked_seconds"] < options.buffer_timeout_seconds
    run.complete(timeout_seconds=60)
    stats = run.stats()
    assert stats["spool_left"] is None and stats["replayed_records"] == stats["spooled_records"]
    unique = once_in_order(await consume_run(settings, run.id, timeout_seconds=120))
    assert points(events_of(unique), "x") == [(i, i, float(i)) for i in range(30_000)]
