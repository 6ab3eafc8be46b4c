"""The SDK against the real Kafka: what a run publishes, read back from the topic.

Each test logs through the public API, then consumes the session's topic with
its own consumer and decodes the records with ``runstream.events`` to assert
exactly what went on the wire: values (NaN and ±Inf included), steps,
ordinals, event order, batch ``seq`` numbering and statuses.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

import producer
from ops.stack import free_port
from producer import (
    BufferFullError,
    DeliveryError,
    Experiment,
    FlushTimeoutError,
    LoggingOptions,
    Run,
    RunClosedError,
    Workspace,
)
from producer._spool import read_records
from runstream.config import Settings
from runstream.events import MAX_RECORD_BYTES, Batch, decode_batch
from runstream.kafka import client_options, ensure_topics
from tests.support import eventually

ROOT = Path(__file__).resolve().parent.parent


@pytest_asyncio.fixture(scope="session")
async def topic(settings: Settings) -> str:
    """The session's events topic (the broker does not auto-create topics), made the way ingest makes it."""
    await ensure_topics(settings, {settings.topic: settings.topic_partitions})
    return settings.topic


@pytest.fixture
def workspace(settings: Settings, topic: str) -> Workspace:
    return Workspace.from_settings(settings)


def options(**overrides: Any) -> LoggingOptions:
    return LoggingOptions(**overrides)


async def consume_run(
    settings: Settings,
    run_id: str,
    until: Callable[[list[Batch]], bool] | None = None,
    *,
    timeout_seconds: float = 60.0,
) -> list[Batch]:
    """Every batch of ``run_id`` on the topic, read from the beginning until ``until`` holds.

    The default condition is a terminal status event in some batch.
    """
    until = until or (lambda batches: any(_terminal(b) for b in batches))
    consumer = AIOKafkaConsumer(
        settings.topic,
        **client_options(settings),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    batches: list[Batch] = []
    key = run_id.encode()

    async def probe() -> list[Batch]:
        records = await consumer.getmany(timeout_ms=200)
        for messages in records.values():
            for message in messages:
                if message.key == key:
                    assert len(message.value) <= MAX_RECORD_BYTES
                    batches.append(decode_batch(message.value))
        return batches

    try:
        return await eventually(probe, until, timeout_seconds=timeout_seconds, interval_seconds=0, what=f"run {run_id}")
    finally:
        await consumer.stop()


def _terminal(batch: Batch) -> bool:
    return any(e["type"] == "status" and e["status"] in ("Completed", "Failed", "Canceled") for e in batch.events)


def events_of(batches: list[Batch], session: str | None = None) -> list[dict[str, Any]]:
    """All events in record order (within one session: seq order)."""
    chosen = [b for b in batches if session is None or b.session_id == session]
    return [e for b in sorted(chosen, key=lambda b: (b.session_id, b.seq)) for e in b.events]


def points(events: list[dict[str, Any]], name: str) -> list[tuple[int, int, Any]]:
    """(ordinal, step, value) of every point of ``name``, in ordinal order."""
    out = []
    for e in events:
        if e["type"] == "scalars" and e["name"] == name:
            out.extend(zip(e["ordinals"], e["steps"], e["values"], strict=True))
    return sorted(out, key=lambda p: p[0])


def bits(value: float) -> bytes:
    return struct.pack("<d", value)


def test_public_names() -> None:
    assert sorted(producer.__all__) == sorted(
        [
            "ENV_EXPERIMENT",
            "ENV_RUN_ID",
            "MAX_NAME_CHARS",
            "MAX_STRING_CHARS",
            "BufferFullError",
            "CondaDependencies",
            "DeliveryError",
            "DockerConfiguration",
            "Environment",
            "Experiment",
            "FlushTimeoutError",
            "LoggingOptions",
            "MetricTypeError",
            "MetricValueError",
            "OfflineRunError",
            "ProducerError",
            "QueryServiceError",
            "ReadConsistencyError",
            "Run",
            "RunClosedError",
            "RunConfiguration",
            "RunDetails",
            "RunEnvironmentError",
            "RunFailedError",
            "RunNotFoundError",
            "ScriptRunConfig",
            "SessionLag",
            "SnapshotError",
            "SpoolCorruptError",
            "SyncResult",
            "UnsupportedError",
            "UsageError",
            "Workspace",
            "WorkspaceConfigError",
            "sync_spool",
        ]
    )
    for name in producer.__all__:
        assert getattr(producer, name) is not None


async def test_scalars_round_trip_exactly(settings: Settings, workspace: Workspace) -> None:
    run = Experiment(workspace, "scalars").start_logging(display_name="round trip", outputs=None)
    floats = [0.1, -2.5, math.nan, math.inf, -math.inf, 5e-324, 1.7976931348623157e308, -0.0]
    for value in floats:
        run.log("f", value)
    run.log("i", 3)
    run.log("i", -(2**53))  # the largest magnitude the float64 series holds exactly (beyond: MetricValueError)
    run.log("b", True)
    run.log("b", False)
    run.log("s", "hello ☃")
    run.log("np", np.float32(0.5))
    run.log("np", np.float64(np.nan))
    run.log("npi", np.int64(7))
    run.log("stepped", 1.0, step=10)
    run.log("stepped", 2.0, step=5)  # out of order: kept
    run.log("stepped", 3.0, step=5)  # repeated: kept
    run.log("stepped", 4.0)  # automatic again: the name's count
    run.complete()

    batches = await consume_run(settings, run.id)
    assert {b.session_id for b in batches} == {run.session_id}
    assert sorted(b.seq for b in batches) == list(range(1, len(batches) + 1))
    events = events_of(batches)
    assert events[0]["type"] == "run_started"
    assert events[0]["experiment"] == "scalars" and events[0]["display_name"] == "round trip"
    assert events[0]["parent"] is None
    assert (events[1]["type"], events[1]["status"], events[1]["error"]) == ("status", "Running", None)
    assert (events[-1]["type"], events[-1]["status"]) == ("status", "Completed")

    got = points(events, "f")
    assert [(o, s) for o, s, _ in got] == [(i, i) for i in range(len(floats))]
    assert [bits(v) for _, _, v in got] == [bits(v) for v in floats]
    assert points(events, "i") == [(0, 0, 3), (1, 1, -(2**53))]
    assert points(events, "b") == [(0, 0, True), (1, 1, False)]
    assert points(events, "s") == [(0, 0, "hello ☃")]
    np_points = points(events, "np")
    assert np_points[0] == (0, 0, 0.5) and math.isnan(np_points[1][2])
    assert points(events, "npi") == [(0, 0, 7)]
    assert points(events, "stepped") == [(0, 10, 1.0), (1, 5, 2.0), (2, 5, 3.0), (3, 3, 4.0)]
    kinds = {(e["name"], e["kind"]) for e in events if e["type"] == "scalars"}
    assert ("i", "int") in kinds and ("b", "bool") in kinds and ("s", "str") in kinds and ("npi", "int") in kinds
    for e in events:
        if e["type"] == "scalars":
            assert all(isinstance(t, float) and abs(t - time.time()) < 600 for t in e["times"])


async def test_log_metrics_shares_one_time_and_step_and_keeps_step_with_log(
    settings: Settings, workspace: Workspace
) -> None:
    run = Experiment(workspace, "log-metrics").start_logging(outputs=None)
    run.log("loss", 0.9)
    run.log_metrics({"loss": 0.5, "acc": 1, "ok": True, "lr": np.float32(0.25)})  # validated path
    run.log_metrics({"loss": 0.25, "acc": 2.5, "lr": 0.125})  # acc widens to float
    run.log("acc", 3.0)
    run.log_metrics({"loss": 0.125, "acc": 4.0}, step=np.int64(10))  # every float already logged: fast path
    run.log_metrics({"loss": 0.0625, "acc": 5.0})  # automatic again: each name's count, as run.log
    run.log_metrics({})
    run.complete()

    events = events_of(await consume_run(settings, run.id))
    assert points(events, "loss") == [(0, 0, 0.9), (1, 1, 0.5), (2, 2, 0.25), (3, 10, 0.125), (4, 4, 0.0625)]
    assert points(events, "acc") == [(0, 0, 1), (1, 1, 2.5), (2, 2, 3.0), (3, 10, 4.0), (4, 4, 5.0)]
    assert points(events, "ok") == [(0, 0, True)] and points(events, "lr") == [(0, 0, 0.25), (1, 1, 0.125)]
    times = {
        (e["name"], o): t
        for e in events
        if e["type"] == "scalars"
        for o, t in zip(e["ordinals"], e["times"], strict=True)
    }
    calls = [
        [("loss", 1), ("acc", 0), ("ok", 0), ("lr", 0)],
        [("loss", 2), ("acc", 1), ("lr", 1)],
        [("loss", 3), ("acc", 3)],
        [("loss", 4), ("acc", 4)],
    ]
    stamps = [{times[point] for point in call} for call in calls]
    assert all(len(s) == 1 for s in stamps)  # one time per call
    ordered = [stamp for s in stamps for stamp in s]
    assert ordered == sorted(ordered)


async def test_many_points_make_many_gapless_batches(settings: Settings, workspace: Workspace) -> None:
    ws = Workspace.from_settings(settings, options=options(flush_points=5_000, flush_interval_seconds=0.05))
    run = Experiment(ws, "volume").start_logging(outputs=None)
    n = 60_000
    for i in range(n):
        run.log("loss", i * 0.25)
        if i % 3 == 0:
            run.log("acc", float(i))
        if i % 10_000 == 9_999:
            run.flush(30)  # at least one record per 10,000 points, whatever the timing
    run.complete()

    batches = await consume_run(settings, run.id)
    assert len(batches) >= 6
    assert sorted(b.seq for b in batches) == list(range(1, len(batches) + 1))
    events = events_of(batches)
    assert points(events, "loss") == [(i, i, i * 0.25) for i in range(n)]
    assert points(events, "acc") == [(k, k, float(i)) for k, i in enumerate(range(0, n, 3))]
    assert run.stats()["records_sent"] == len(batches)


async def test_large_string_points_are_split_under_the_record_limit(settings: Settings, workspace: Workspace) -> None:
    run = Experiment(workspace, "big-strings").start_logging(outputs=None)
    text = "x" * producer.MAX_STRING_CHARS
    count = 2_500  # ~10 MB of strings: more than one record
    for i in range(count):
        run.log("notes", text[: producer.MAX_STRING_CHARS - i % 7])
    run.complete()
    batches = await consume_run(settings, run.id)
    assert len(batches) >= 2
    got = points(events_of(batches), "notes")
    assert [o for o, _, _ in got] == list(range(count))
    assert all(v == text[: producer.MAX_STRING_CHARS - o % 7] for o, _, v in got)


async def test_non_scalar_events_keep_their_order(settings: Settings, workspace: Workspace) -> None:
    run = Experiment(workspace, "order").start_logging(outputs=None)
    run.log("a", 1.0)
    run.tag("phase", "warmup")
    run.log("a", 2.0)
    run.log_list("fib", [0, 1, 1, 2, 3.5, math.nan, "x", True])
    run.log_row("curve", x=1, y=0.5)
    run.log_row("curve", x=2, y=math.inf, z=None)
    run.log_table("sine", {"angle": [0.0, 0.5], "sin": [0.0, np.sin(0.5)]})
    run.set_tags({"k1": None, "k2": "v2"})
    run.add_properties({"owner": "me"})
    run.add_properties({"owner": "me", "lr": "0.1"})  # same value again: fine, only lr is new
    run.log("a", 3.0)
    run.complete()

    events = events_of(await consume_run(settings, run.id))
    shape = [(e["type"], e.get("name")) for e in events if e["type"] != "heartbeat"]
    assert shape == [
        ("run_started", None),
        ("status", None),
        ("scalars", "a"),
        ("tags", None),
        ("scalars", "a"),
        ("list", "fib"),
        ("row", "curve"),
        ("row", "curve"),
        ("table", "sine"),
        ("tags", None),
        ("properties", None),
        ("properties", None),
        ("scalars", "a"),
        ("status", None),
    ]
    by_type = [e for e in events if e["type"] != "heartbeat"]
    assert by_type[3]["tags"] == {"phase": "warmup"}
    fib = by_type[5]["values"]
    assert fib[:5] == [0, 1, 1, 2, 3.5] and math.isnan(fib[5]) and fib[6:] == ["x", True]
    assert by_type[6]["columns"] == {"x": 1, "y": 0.5}
    assert by_type[7]["columns"] == {"x": 2, "y": math.inf, "z": None}
    assert by_type[8]["columns"] == {"angle": [0.0, 0.5], "sin": [0.0, float(np.sin(0.5))]}
    assert by_type[9]["tags"] == {"k1": None, "k2": "v2"}
    assert by_type[10]["properties"] == {"owner": "me"}
    assert by_type[11]["properties"] == {"lr": "0.1"}
    assert points(events, "a") == [(0, 0, 1.0), (1, 1, 2.0), (2, 2, 3.0)]
    assert run._tags == {"phase": "warmup", "k1": None, "k2": "v2"}


async def test_with_block_fails_the_run_with_the_exception(settings: Settings, workspace: Workspace) -> None:
    experiment = Experiment(workspace, "failing")
    with pytest.raises(ZeroDivisionError):
        with experiment.start_logging(outputs=None) as run:
            run.log("x", 1.0)
            1 / 0  # noqa: B018
    events = events_of(await consume_run(settings, run.id))
    final = events[-1]
    assert (final["type"], final["status"]) == ("status", "Failed")
    assert final["error"]["type"] == "ZeroDivisionError"
    assert final["error"]["message"] == "division by zero"
    assert "1 / 0" in final["error"]["traceback"]
    with pytest.raises(RunClosedError, match="Failed"):
        run.log("x", 2.0)


async def test_with_block_completes_and_terminal_calls(settings: Settings, workspace: Workspace) -> None:
    experiment = Experiment(workspace, "lifecycle")
    with experiment.start_logging(outputs=None) as run:
        run.log("x", 1.0)
    run.complete()  # again: nothing happens
    with pytest.raises(RunClosedError, match="Completed"):
        run.log("x", 2.0)
    with pytest.raises(RunClosedError):
        run.log("x", 2)  # the slow path says so too
    run.tag("late")  # Azure ML v1 tags finished runs: delivered by a session of its own
    with pytest.raises(RunClosedError):
        run.fail("too late")
    events = events_of(await consume_run(settings, run.id))
    assert [e["status"] for e in events if e["type"] == "status"] == ["Running", "Completed"]
    assert points(events, "x") == [(0, 0, 1.0)]
    assert [e["tags"] for e in events if e["type"] == "tags"] == [{"late": None}]

    canceled = experiment.start_logging(outputs=None)
    canceled.cancel()
    failed = experiment.start_logging(outputs=None)
    failed.fail({"reason": "diverged", "loss": math.nan})
    events = events_of(await consume_run(settings, canceled.id))
    assert events[-1]["status"] == "Canceled"
    error = events_of(await consume_run(settings, failed.id))[-1]["error"]
    assert error["reason"] == "diverged" and error["loss"] == {"$float": "NaN"}


async def test_heartbeats_while_running(settings: Settings, workspace: Workspace) -> None:
    ws = Workspace.from_settings(settings, options=options(heartbeat_interval_seconds=0.2))
    run = Experiment(ws, "heartbeats").start_logging(outputs=None)
    run.log("x", 1.0)

    def beats(batches: list[Batch]) -> int:
        return sum(e["type"] == "heartbeat" for e in events_of(batches))

    await consume_run(settings, run.id, lambda b: beats(b) >= 3)
    run.complete()
    assert run.stats()["heartbeats"] >= 3


async def test_flush_delivers_without_completing(settings: Settings, workspace: Workspace) -> None:
    run = Experiment(workspace, "flush").start_logging(outputs=None)
    for i in range(1000):
        run.log("x", float(i))
    run.flush(timeout_seconds=30)
    assert run.stats()["pending"] == 0
    batches = await consume_run(settings, run.id, lambda b: len(points(events_of(b), "x")) == 1000)
    assert not any(_terminal(b) for b in batches)
    run.complete()


async def test_full_buffer_blocks_then_raises_without_buffering(settings: Settings) -> None:
    # Nothing listens on this port: nothing is ever delivered.
    ws = Workspace(
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        query_url="http://127.0.0.1:1",
        topic=settings.topic,
        options=options(flush_points=100, max_buffered_points=1_000, buffer_timeout_seconds=0.3, spool=False),
    )
    run = Experiment(ws, "full").start_logging(outputs=None)
    logged = 0
    started = time.monotonic()
    with pytest.raises(BufferFullError, match="1000"):
        for i in range(10_000):
            run.log("x", float(i))
            logged += 1
    assert 0.3 <= time.monotonic() - started < 10
    # run_started and the Running status count too.
    assert logged == 1_000 - 2
    assert run.stats()["blocked_calls"] == 1 and run.stats()["buffer_full_errors"] == 1
    assert run.stats()["pending"] == 1_000
    with pytest.raises(FlushTimeoutError):
        run.flush(timeout_seconds=0.3)
    with pytest.raises(FlushTimeoutError, match="not delivered"):
        run.complete(timeout_seconds=0.5)


async def test_get_context_in_a_child_process(settings: Settings, workspace: Workspace, tmp_path: Path) -> None:
    run = Experiment(workspace, "submitted").start_logging(outputs=None)
    script = (
        "from producer import Run\n"
        "run = Run.get_context()\n"
        "assert Run.get_context() is run\n"
        "for i in range(500):\n"
        "    run.log('child', i * 1.5)\n"
        "run.flush(30)\n"
        "print(run.session_id)\n"
    )
    env = {**os.environ, **run.get_environment(), "PYTHONPATH": str(ROOT), "RUNSTREAM_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    child_session = result.stdout.strip()
    run.log("parent", 1.0)
    run.complete()
    batches = await consume_run(settings, run.id)
    assert {b.session_id for b in batches} == {run.session_id, child_session}
    child = [b for b in batches if b.session_id == child_session]
    assert sorted(b.seq for b in child) == list(range(1, len(child) + 1))
    assert points(events_of(batches, child_session), "child") == [(i, i, i * 1.5) for i in range(500)]
    assert not any(e["type"] in ("run_started", "status") for e in events_of(batches, child_session))
    assert points(events_of(batches, run.session_id), "child") == []


def test_get_context_without_a_run_is_offline_and_spools(tmp_path: Path) -> None:
    script = (
        "from producer import Run\n"
        "run = Run.get_context()\n"
        "assert run.offline and type(run).__name__ == '_OfflineRun'\n"
        "run.log('x', float('nan'))\n"
        "run.log('x', 2.0)\n"
        "run.tag('t', 'v')\n"
        "run.complete()\n"
        "print(run.id, run.session_id, run.get_status())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    env.update({"PYTHONPATH": str(ROOT), "RUNSTREAM_HOME": str(tmp_path)})
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    run_id, session, status = result.stdout.split()
    assert status == "Completed"
    # Azure ML v1's offline id; the spool (and, once synced, the store) keep the UUID.
    assert run_id.startswith("OfflineRun_")
    spool = tmp_path / "spool" / run_id.removeprefix("OfflineRun_") / f"{session}.jsonl"
    batches = [decode_batch(value) for value, _ in read_records(spool)]
    assert [b.seq for b in batches] == list(range(1, len(batches) + 1))
    events = events_of(batches)
    assert events[0]["type"] == "run_started" and events[0]["experiment"] == "offline"
    got = points(events, "x")
    assert math.isnan(got[0][2]) and got[1] == (1, 1, 2.0)
    assert events[-1]["status"] == "Completed"


async def test_forked_child_has_its_own_session(settings: Settings, workspace: Workspace) -> None:
    run = Experiment(workspace, "forked").start_logging(outputs=None)
    for i in range(100):
        run.log("before", float(i))
    (parent_sender,) = [t for t in threading.enumerate() if t.name == "runstream-sender"]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: log, flush, report the session, leave without atexit
        code = 1
        try:
            os.close(read)
            for i in range(300):
                run.log("in_child", float(i))
            run.flush(30)
            # The child sends through a thread of its own (the parent's does not exist here).
            senders = [t for t in threading.enumerate() if t.name == "runstream-sender"]
            if len(senders) == 1 and senders[0] is not parent_sender:
                os.write(write, run.session_id.encode())
                code = 0
        finally:
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    child_session = os.read(read, 100).decode()
    os.close(read)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child_session and child_session != run.session_id
    for i in range(100, 200):
        run.log("before", float(i))
    run.complete()

    batches = await consume_run(settings, run.id)
    child_events = events_of(batches, child_session)
    parent_events = events_of(batches, run.session_id)
    assert points(child_events, "in_child") == [(i, i, float(i)) for i in range(300)]
    assert points(child_events, "before") == []
    assert points(parent_events, "before") == [(i, i, float(i)) for i in range(200)]
    child_seqs = sorted(b.seq for b in batches if b.session_id == child_session)
    assert child_seqs == list(range(1, len(child_seqs) + 1))


def test_attached_run_rejects_a_bad_id(workspace: Workspace) -> None:
    with pytest.raises(ValueError, match="not a UUID"):
        Run(Experiment(workspace, "e"), "nope")


async def test_outputs_and_snapshot_need_no_service_when_absent(
    settings: Settings, workspace: Workspace, tmp_path: Path
) -> None:
    # An outputs directory that does not exist is simply not uploaded.
    run = Experiment(workspace, "no-outputs").start_logging(outputs=tmp_path / "missing")
    run.complete()
    assert events_of(await consume_run(settings, run.id))[-1]["status"] == "Completed"


async def _small_topic(settings: Settings, max_message_bytes: int) -> Settings:
    """A topic of its own whose record limit is far below the format's."""
    name = f"{settings.topic}.small-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    name,
                    num_partitions=1,
                    replication_factor=1,
                    topic_configs={"max.message.bytes": str(max_message_bytes)},
                )
            ]
        )
    finally:
        await admin.close()
    return dataclasses.replace(settings, topic=name)


async def test_records_shrink_to_fit_a_topic_with_a_small_limit(settings: Settings) -> None:
    small = await _small_topic(settings, 64 * 1024)
    ws = Workspace.from_settings(small, options=options(compression=None))
    run = Experiment(ws, "small-topic").start_logging(outputs=None)
    n = 30_000
    for i in range(n):
        run.log("x", i / 3)
    run.log_list("short", [1, 2, 3])
    run.complete()
    assert run.stats()["record_splits"] >= 1
    batches = await consume_run(small, run.id)
    assert sorted(b.seq for b in batches) == list(range(1, len(batches) + 1))
    events = events_of(batches)
    assert points(events, "x") == [(i, i, i / 3) for i in range(n)]
    assert [e["values"] for e in events if e["type"] == "list"] == [[1, 2, 3]]
    assert events[-1]["status"] == "Completed"


async def test_an_entry_the_topic_cannot_take_fails_delivery(settings: Settings) -> None:
    small = await _small_topic(settings, 64 * 1024)
    ws = Workspace.from_settings(small, options=options(compression=None))
    run = Experiment(ws, "too-big").start_logging(outputs=None)
    run.log_list("big", ["y" * 1000] * 200)  # one entry of ~200 KB: cannot be split
    with pytest.raises(DeliveryError, match="MessageSizeTooLarge"):
        run.complete(timeout_seconds=30)


async def test_threads_logging_to_one_run_lose_nothing(settings: Settings, workspace: Workspace) -> None:
    ws = Workspace.from_settings(settings, options=options(flush_points=1_000))
    run = Experiment(ws, "threads").start_logging(outputs=None)
    per_thread = 20_000

    def work(k: int) -> None:
        for i in range(per_thread):
            run.log("shared", float(k * per_thread + i))
            run.log(f"own{k}", float(i))
            if i % 5_000 == 0:
                run.log("shared_int", k)  # the slow path, concurrently with the fast one

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.complete()

    events = events_of(await consume_run(settings, run.id))
    shared = points(events, "shared")
    assert [o for o, _, _ in shared] == list(range(4 * per_thread))
    assert sorted(v for _, _, v in shared) == [float(i) for i in range(4 * per_thread)]
    for k in range(4):
        # Each thread's own points in its order; its share of "shared" in its order too.
        assert points(events, f"own{k}") == [(i, i, float(i)) for i in range(per_thread)]
        mine = [v for _, _, v in shared if k * per_thread <= v < (k + 1) * per_thread]
        assert mine == sorted(mine)
    assert sorted(v for _, _, v in points(events, "shared_int")) == sorted([k for k in range(4) for _ in range(4)])


async def test_runs_of_a_process_share_one_sender_thread(settings: Settings, workspace: Workspace) -> None:
    def sender_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "runstream-sender"]

    runs = [Experiment(workspace, "many").start_logging(outputs=None) for _ in range(40)]
    for k, run in enumerate(runs):
        for i in range(1_000):
            run.log("x", float(k * 1_000 + i))
    # Forty runs, each its own session and seqs, one thread (and one Kafka producer).
    assert len(sender_threads()) == 1
    assert len({run.session_id for run in runs}) == 40
    for run in runs:
        run.complete()
    for k, run in enumerate(runs):
        batches = await consume_run(settings, run.id)
        assert {b.session_id for b in batches} == {run.session_id}
        assert sorted(b.seq for b in batches) == list(range(1, len(batches) + 1))
        assert points(events_of(batches), "x") == [(i, i, float(k * 1_000 + i)) for i in range(1_000)]


def test_interpreter_exit_delivers_what_was_not_flushed(settings: Settings, workspace: Workspace) -> None:
    script = (
        "import sys\n"
        "from producer import Experiment, LoggingOptions, Workspace\n"
        "ws = Workspace.from_config(options=LoggingOptions(flush_points=10**6, max_buffered_points=10**6,"
        " flush_interval_seconds=3600))\n"
        "run = Experiment(ws, 'exiting').start_logging(outputs=None)\n"
        "for i in range(200_000):\n"
        "    run.log('x', i * 0.5)\n"
        "print(run.id, run.stats()['pending'])\n"
        "del run\n"  # dropped without complete(): still flushed at exit
        "import gc; gc.collect()\n"
    )
    env = {**os.environ, **workspace.as_env(), "PYTHONPATH": str(ROOT), "RUNSTREAM_HOME": str(settings.home / "exit")}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    run_id, pending = result.stdout.split()
    assert int(pending) == 200_002  # nothing had been sent before exit

    async def check() -> None:
        events = events_of(await consume_run(settings, run_id, lambda b: len(points(events_of(b), "x")) >= 200_000))
        assert points(events, "x") == [(i, i, i * 0.5) for i in range(200_000)]
        assert [e["status"] for e in events if e["type"] == "status"] == ["Running"]  # exit does not complete

    asyncio.run(check())


async def test_sigterm_flushes_and_cancels(settings: Settings, workspace: Workspace) -> None:
    script = (
        "import sys\n"
        "from producer import Experiment, Workspace\n"
        "run = Experiment(Workspace.from_config(), 'terminated').start_logging(outputs=None)\n"
        "print(run.id, flush=True)\n"
        "i = 0\n"
        "while True:\n"
        "    run.log('x', float(i))\n"
        "    i += 1\n"
        "    if i == 100_000:\n"
        "        print('ready', flush=True)\n"
    )
    env = {**os.environ, **workspace.as_env(), "PYTHONPATH": str(ROOT)}
    with subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        assert proc.stdout.readline().strip() == "ready"
        proc.terminate()
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    events = events_of(await consume_run(settings, run_id))
    final = events[-1]
    assert (final["type"], final["status"]) == ("status", "Canceled")
    assert "SIGTERM" in final["error"]["message"]
    got = points(events, "x")
    assert len(got) >= 100_000
    assert got == [(i, i, float(i)) for i in range(len(got))]  # a prefix, nothing lost in between


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("call", ["log", "log_metrics"])
async def test_log_interrupted_by_signals_keeps_columns_aligned(
    settings: Settings, workspace: Workspace, call: str
) -> None:
    run = Experiment(workspace, "interrupted").start_logging(outputs=None)
    log: Callable[[str, float], object] = run.log
    if call == "log_metrics":  # an interrupted dict may leave a prefix, each name's columns aligned

        def log(name: str, value: float) -> None:
            run.log_metrics({name: value, "y": value})

    armed = [False]  # raise only inside the try below, where the test catches it

    def interrupt(signum: int, frame: object) -> None:
        if armed[0]:
            armed[0] = False
            raise Interrupted

    previous = signal.signal(signal.SIGVTALRM, interrupt)
    signal.setitimer(signal.ITIMER_VIRTUAL, 0.0003, 0.0003)  # every 0.3 ms of CPU, anywhere in log()
    returned = interrupts = i = 0
    try:
        while interrupts < 300:
            try:
                armed[0] = True
                log("x", float(i))
                armed[0] = False
                returned += 1
            except Interrupted:
                interrupts += 1
            i += 1
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0, 0)
        signal.signal(signal.SIGVTALRM, previous)
    run.complete()
    events = events_of(await consume_run(settings, run.id))
    got = points(events, "x")
    # Interrupted calls may or may not have stored their point; completed ones all did.
    assert returned <= len(got) <= i
    ordinals = [o for o, _, _ in got]
    assert ordinals == sorted(set(ordinals))
    assert all(step == ordinal for ordinal, step, _ in got)
    values = [v for _, _, v in got]
    assert values == sorted(set(values)) and all(v.is_integer() and 0 <= v < i for v in values)
    assert all(step == ordinal for ordinal, step, _ in points(events, "y"))


async def test_an_uncaught_exception_ends_the_run(settings: Settings, workspace: Workspace) -> None:
    outcomes = {}
    for raised, status in (("ValueError('bad batch')", "Failed"), ("KeyboardInterrupt()", "Canceled")):
        script = (
            "from producer import Experiment, Workspace\n"
            "run = Experiment(Workspace.from_config(), 'uncaught').start_logging(outputs=None)\n"
            "print(run.id, flush=True)\n"
            "for i in range(1000):\n"
            "    run.log('x', float(i))\n"
            f"raise {raised}\n"
        )
        env = {**os.environ, **workspace.as_env(), "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode != 0 and raised.split("(")[0] in done.stderr  # still printed as usual
        outcomes[status] = done.stdout.strip()
    failed = events_of(await consume_run(settings, outcomes["Failed"]))
    assert failed[-1]["status"] == "Failed" and failed[-1]["error"]["message"] == "bad batch"
    assert points(failed, "x") == [(i, i, float(i)) for i in range(1000)]
    canceled = events_of(await consume_run(settings, outcomes["Canceled"]))
    assert canceled[-1]["status"] == "Canceled"
