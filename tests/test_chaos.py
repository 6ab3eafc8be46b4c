"""The chaos suite in its quick form (``python -m tests.chaos --quick``): under every fault, each
run holds exactly what its training process logged, in PostgreSQL and through the query service.

The suite runs once, as a subprocess with its own Kafka and PostgreSQL (it
stops and freezes them, so never the session's), started in the background
as soon as the session has collected these tests (tests/chaos/quick.py);
each scenario is then one test here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from ops.stack import free_port
from producer import Workspace, sync_spool
from producer._spool import SpoolWriter
from runstream.config import Settings
from runstream.kafka import client_options, ensure_topics
from tests.chaos.quick import QUICK_CHAOS, TIMEOUT_SECONDS, QuickChaos
from tests.chaos.scenarios import QUICK_SCENARIOS
from tests.support import eventually

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest) -> dict[str, dict[str, Any]]:
    # Started in the background when the session collected these tests (conftest), else now.
    suite = request.config.stash.get(QUICK_CHAOS, None) or QuickChaos()
    try:
        found, output = suite.outcomes()
    finally:
        suite.stop()
    print(output[-8000:])  # the table, in the report of a failing test
    if found is None:
        pytest.fail(f"the chaos suite wrote no outcomes:\n{output[-4000:]}")
    return found


@pytest.mark.timeout(TIMEOUT_SECONDS + 120)
@pytest.mark.parametrize("scenario", QUICK_SCENARIOS)
def test_nothing_missing_nothing_duplicated(outcomes: dict[str, dict[str, Any]], scenario: str) -> None:
    if scenario == "fill-spool-disk" and os.geteuid() != 0:
        pytest.skip("the spool's small disk is a tmpfs mount (root only)")
    outcome = outcomes[scenario]
    assert outcome["errors"] == [], outcome["notes"]
    for source in ("database", "query"):
        tally = outcome[source]
        assert tally["sent"] > 0
        assert (tally["missing"], tally["duplicated"], tally["unexpected"]) == (0, 0, 0), (source, outcome["notes"])
    assert outcome["wrong_status"] == {}


#: The smallest form of the fill-spool-disk scenario: no broker at all (the SDK spools after
#: spill_after_seconds), a spool directory on a full disk, and a training loop that must go on.
_FULL_DISK_TRAINING = """
import sys, time
from producer import Experiment, LoggingOptions, Workspace
options = LoggingOptions(request_timeout_seconds=0.5, spill_after_seconds=0.5, close_timeout_seconds=2.0)
ws = Workspace(kafka_bootstrap=sys.argv[1], query_url="http://127.0.0.1:9", home=sys.argv[2], options=options)
run = Experiment(ws, "full-disk").start_logging(outputs=None)
deadline = time.monotonic() + 5.0
step = 0
while time.monotonic() < deadline:  # ~20,000 points/s for 5 s: far below max_buffered_points
    for _ in range(200):
        run.log("x", float(step))
        step += 1
    time.sleep(0.01)
print("logged", step, run.stats(), flush=True)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small tmpfs (root only)")
def test_a_full_spool_disk_does_not_stop_the_training_loop(tmp_path: Path) -> None:
    spool = tmp_path / "home" / "spool"
    spool.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "chaos-repro", str(spool)], check=True)
    try:
        done = subprocess.run(
            [sys.executable, "-c", _FULL_DISK_TRAINING, f"127.0.0.1:{free_port()}", str(tmp_path / "home")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        subprocess.run(["umount", "-l", str(spool)], check=False)
    assert done.returncode == 0, done.stderr[-3000:]


async def test_sync_skips_a_spool_file_its_process_removes_meanwhile(settings: Settings, tmp_path: Path) -> None:
    """Found by kill-trainer: a live process that finishes replaying its spool closes the file,
    then removes it, so for an instant it is unlocked; ``runstream sync`` may list it then and
    find it gone by the time it reads it. Sync must skip it, not fail."""
    spool = tmp_path / "spool"
    first = SpoolWriter(spool / str(uuid.uuid4()) / f"{uuid.uuid4()}.jsonl")
    for i in range(1_000):  # enough to keep sync publishing while the second file goes
        first.append(b'{"n": %d}' % i)
    first.close()
    vanishing = SpoolWriter(spool / str(uuid.uuid4()) / f"{uuid.uuid4()}.jsonl")
    vanishing.append(b"{}")
    vanishing.close()
    later = time.time() + 60
    os.utime(vanishing.path, (later, later))  # sync publishes oldest first: this one second
    topic = f"{settings.topic}.sync-race"
    await ensure_topics(settings, {topic: 1})
    workspace = Workspace.from_settings(dataclasses.replace(settings, topic=topic))
    syncing = asyncio.create_task(asyncio.to_thread(sync_spool, spool, workspace=workspace))
    await eventually(lambda: _end_offset(settings, topic), lambda n: n > 0, what="sync publishing the first file")
    vanishing.path.unlink()
    result = await syncing
    assert result.records == 1_000 and not first.path.exists()


async def _end_offset(settings: Settings, topic: str) -> int:
    consumer = AIOKafkaConsumer(**client_options(settings))
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        return int((await consumer.end_offsets([partition]))[partition])
    finally:
        await consumer.stop()
