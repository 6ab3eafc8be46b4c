"""Durability: the spool when Kafka is away, its replay when Kafka returns, and sync_spool."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from ops.stack import free_port
from producer import (
    Experiment,
    LoggingOptions,
    SpoolCorruptError,
    Workspace,
    sync_spool,
)
from producer._sender import Sender
from producer._sinks import KafkaSink, SharedProducer
from producer._spool import SpoolWriter, is_locked, read_records
from runstream.config import Settings
from runstream.events import Batch, decode_batch
from tests.test_producer import ROOT, consume_run, events_of, points, topic  # noqa: F401 - fixture

# The broker does not create topics on first use; sync and replays need the session's.
pytestmark = pytest.mark.usefixtures("topic")


def _unreachable(settings: Settings, home: Path, **overrides: Any) -> Workspace:
    return Workspace(
        kafka_bootstrap=f"127.0.0.1:{free_port()}",  # nothing listens here
        query_url=settings.query_url,
        topic=settings.topic,
        home=home,
        options=LoggingOptions(**{"spill_after_seconds": 0.2, "request_timeout_seconds": 2.0, **overrides}),
    )


def test_spool_lines_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    writer = SpoolWriter(path)
    writer.append(b'{"a":1}')
    writer.append(b'{"b":2}')
    assert is_locked(path)
    writer.close()
    assert not is_locked(path)
    assert [v for v, _ in read_records(path)] == [b'{"a":1}', b'{"b":2}']
    with path.open("ab") as file:
        file.write(b"0badf00d {torn")  # a crash mid-write: no newline, ignored
    assert [v for v, _ in read_records(path)] == [b'{"a":1}', b'{"b":2}']
    data = path.read_bytes().replace(b'{"b":2}', b'{"b":3}')
    path.write_bytes(data)
    with pytest.raises(SpoolCorruptError, match="line 2"):
        list(read_records(path))


async def test_kafka_away_spools_and_sync_publishes_exactly(settings: Settings, tmp_path: Path) -> None:
    ws = _unreachable(settings, tmp_path, max_buffered_points=1_000, flush_points=100)
    run = Experiment(ws, "spooled").start_logging(outputs=None)
    n = 20_000  # twenty times the memory bound: only possible because the spool takes it
    for i in range(n):
        run.log("x", i * 0.5)
    run.tag("where", "disk")
    run.complete(timeout_seconds=10)
    stats = run.stats()
    assert stats["pending"] == 0 and stats["records_sent"] == 0
    assert stats["spooled_records"] >= 2
    spool = Path(stats["spool_left"])
    assert spool == tmp_path / "spool" / run.id / f"{run.session_id}.jsonl"
    spooled = [decode_batch(v) for v, _ in read_records(spool)]
    assert [b.seq for b in spooled] == list(range(1, len(spooled) + 1))

    result = sync_spool(tmp_path / "spool", workspace=Workspace.from_settings(settings))
    assert result.records == len(spooled) and result.sessions == [spool] and not spool.exists()
    batches = await consume_run(settings, run.id)
    assert sorted(b.seq for b in batches) == [b.seq for b in spooled]
    events = events_of(batches)
    assert points(events, "x") == [(i, i, i * 0.5) for i in range(n)]
    assert [e["status"] for e in events if e["type"] == "status"] == ["Running", "Completed"]
    assert sync_spool(tmp_path / "spool", workspace=Workspace.from_settings(settings)).records == 0


async def test_sync_skips_a_spool_a_live_process_holds(settings: Settings, tmp_path: Path) -> None:
    held = tmp_path / "spool" / str(uuid.uuid4()) / f"{uuid.uuid4()}.jsonl"
    writer = SpoolWriter(held)
    writer.append(b"{}")
    try:
        result = sync_spool(tmp_path / "spool", workspace=Workspace.from_settings(settings))
    finally:
        writer.close()
    assert result.skipped == [held] and result.records == 0 and held.exists()


async def test_offline_run_syncs_with_its_files(settings: Settings, tmp_path: Path, query_service: str) -> None:
    script = (
        "import io\n"
        "from producer import Run\n"
        "run = Run.get_context()\n"
        "run.log('acc', 0.9)\n"
        "run.upload_file('notes.txt', io.BytesIO(b'offline notes'))\n"
        "run.complete()\n"
        "print(run.id)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    env.update({"PYTHONPATH": str(ROOT), "RUNSTREAM_HOME": str(tmp_path)})
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip().removeprefix("OfflineRun_")  # stored under its UUID (producer._offline)
    result = sync_spool(tmp_path / "spool", workspace=Workspace.from_settings(settings))
    assert result.files == [f"{run_id}/notes.txt"]
    events = events_of(await consume_run(settings, run_id))
    assert points(events, "acc") == [(0, 0, 0.9)]
    assert events[0]["experiment"] == "offline"


class Flaky:
    """The real Kafka sink behind a switch: down until ``up`` is set (a seam, not a mock of Kafka)."""

    def __init__(self, inner: KafkaSink) -> None:
        self.inner = inner
        self.up = False
        self.refused = 0

    async def open(self) -> None:
        await self.inner.open()

    async def publish(self, key: bytes, value: bytes, timeout_seconds: float | None = None) -> None:
        if not self.up:
            self.refused += 1
            raise ConnectionError("kafka is away")
        await self.inner.publish(key, value, timeout_seconds)

    async def reset(self) -> None:
        await self.inner.reset()

    async def close(self) -> None:
        await self.inner.close()


async def test_kafka_returning_replays_the_spool_in_order(settings: Settings, tmp_path: Path) -> None:
    run_id, session = str(uuid.uuid4()), str(uuid.uuid4())
    shared = SharedProducer(settings, compression=None, request_timeout_seconds=5)
    sink = Flaky(KafkaSink(shared, settings.topic))
    spool = SpoolWriter(tmp_path / f"{session}.jsonl")
    sender = Sender(
        run_id=run_id,
        session_id=session,
        sink=sink,
        flush_points=50,
        max_points=200,
        wait_seconds=10,
        flush_interval_seconds=0.02,
        heartbeat_interval_seconds=3600,
        spool=spool,
        spill_after_seconds=0.2,
    )
    sender.start()
    sender.buffer.add_event({"type": "run_started", "time": time.time(), "experiment": "flaky", "parent": None})
    for i in range(2_000):  # ten times the memory bound, while Kafka is away
        sender.buffer.append("x", "float", float(i), None)
    sender.flush(30)
    assert sender.spooled > 0 and sender.records_sent == 0 and spool.path.exists()
    sink.up = True  # Kafka is back: the next probe replays the spool, then sends directly
    for i in range(2_000, 3_000):
        sender.buffer.append("x", "float", float(i), None)
    sender.buffer.close({"type": "status", "time": time.time(), "status": "Completed", "error": None})
    sender.stop(30)
    assert sender.replayed == sender.spooled and not spool.path.exists() and sender.spool_left is None

    def complete(batches: list[Batch]) -> bool:
        return any(e["type"] == "status" for e in events_of(batches))

    batches = await consume_run(settings, run_id, complete)
    # In partition order, as ingest will see them: every seq once, in order.
    assert [b.seq for b in batches] == list(range(1, len(batches) + 1))
    assert points(events_of(batches), "x") == [(i, i, float(i)) for i in range(3_000)]


async def test_a_killed_process_leaves_its_spool_for_sync(settings: Settings, tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from producer import Experiment, LoggingOptions, Workspace\n"
        f"ws = Workspace(kafka_bootstrap='127.0.0.1:{free_port()}', query_url='http://127.0.0.1:1',"
        f" topic={settings.topic!r}, home={str(tmp_path)!r},"
        " options=LoggingOptions(spill_after_seconds=0.2, request_timeout_seconds=2))\n"
        "run = Experiment(ws, 'killed').start_logging(outputs=None)\n"
        "for i in range(50_000):\n"
        "    run.log('x', i * 2.0)\n"
        "run.flush(60)\n"  # in the spool: Kafka is unreachable
        "print(run.id, run.stats()['spooled_records'], flush=True)\n"
        "time.sleep(3600)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        run_id, spooled = proc.stdout.readline().split()
        proc.kill()
        assert proc.wait(timeout=30) == -9
    assert int(spooled) > 0
    result = sync_spool(tmp_path / "spool", workspace=Workspace.from_settings(settings))
    assert result.records == int(spooled) and not result.skipped

    def has_all(batches: list[Batch]) -> bool:
        return len(points(events_of(batches), "x")) == 50_000

    events = events_of(await consume_run(settings, run_id, has_all))
    assert points(events, "x") == [(i, i, i * 2.0) for i in range(50_000)]
    assert [e["status"] for e in events if e["type"] == "status"] == ["Running"]  # ingest's liveness ends it


async def test_a_full_spool_disk_holds_records_in_memory_until_it_has_room(settings: Settings, tmp_path: Path) -> None:
    """Kafka away, and the spool's disk full once a record is spooled (RLIMIT_FSIZE: writes past
    the limit fail with EFBIG, as ENOSPC would): training goes on, the records wait in memory
    within the bound, and once the disk has room they are spooled after the ones already
    there, torn lines cut off."""
    script = (
        "import json, os, resource, signal, time\n"
        "from producer import Experiment, LoggingOptions, Workspace\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"  # an error from write(), not a killed process
        f"ws = Workspace(kafka_bootstrap='127.0.0.1:{free_port()}', query_url='http://127.0.0.1:1',"
        f" topic={settings.topic!r}, home={str(tmp_path)!r},"
        " options=LoggingOptions(spill_after_seconds=0.2, request_timeout_seconds=1, flush_points=1_000))\n"
        "def wait_for(key):\n"
        "    deadline = time.monotonic() + 60\n"
        "    while run.stats()[key] == 0 and time.monotonic() < deadline:\n"
        "        time.sleep(0.01)\n"
        "run = Experiment(ws, 'disk-full').start_logging(outputs=None)\n"
        "for i in range(1_000):\n"
        "    run.log('x', i * 0.25)\n"
        "wait_for('spooled_records')\n"
        f"size = os.path.getsize(f'{tmp_path}/spool/{{run.id}}/{{run.session_id}}.jsonl')\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (size + 1024, hard))\n"  # the disk is now full
        "for i in range(1_000, 50_000):\n"
        "    run.log('x', i * 0.25)\n"
        "wait_for('spool_errors')\n"
        "for i in range(50_000, 100_000):\n"  # the disk is full: log() goes on regardless
        "    run.log('x', i * 0.25)\n"
        "full = run.stats()\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))\n"  # room again
        "run.complete(timeout_seconds=60)\n"
        "print(json.dumps({'id': run.id, 'full': full, 'after': run.stats()}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    full, after = report["full"], report["after"]
    assert full["spool_errors"] > 0 and full["spooled_records"] > 0  # some fitted, then the disk was full
    assert full["blocked_calls"] == 0 and full["buffer_full_errors"] == 0 and full["pending"] > 0
    assert after["pending"] == 0 and after["spooled_records"] > full["spooled_records"]
    spool = Path(after["spool_left"])
    spooled = [decode_batch(v) for v, _ in read_records(spool)]  # every line whole: no SpoolCorruptError
    assert [b.seq for b in spooled] == list(range(1, len(spooled) + 1))

    result = sync_spool(tmp_path / "spool", workspace=Workspace.from_settings(settings))
    assert result.records == len(spooled)
    events = events_of(await consume_run(settings, report["id"]))
    assert points(events, "x") == [(i, i, i * 0.25) for i in range(100_000)]
