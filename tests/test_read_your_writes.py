"""Read-your-writes on the real stack: a read made right after a write returns all of it.

Every test writes through the SDK and reads back at once, while another
process logs ~100,000 points/s through the SDK and Kafka into the same
ingest worker, so ingest is never idle and a read that did not wait for this
process's writes would miss some of them. Then the other side: when ingest
cannot catch up in time (its worker stopped, Kafka unreachable) the read
raises :class:`ReadConsistencyError` at the bound, saying how far behind it
is, and never answers with part of the data.
"""

from __future__ import annotations

import asyncio
import io
import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from playwright.async_api import Browser, expect

from ops.stack import free_port
from producer import (
    Experiment,
    FlushTimeoutError,
    LoggingOptions,
    OfflineRunError,
    ReadConsistencyError,
    Run,
    ScriptRunConfig,
    Workspace,
    sync_spool,
)
from producer._consistency import LEDGER
from producer._run import _context_from_env
from runstream.config import Settings
from runstream.consistency import MAX_READ_AFTER_SESSIONS
from runstream.kafka import ensure_topics
from tests.support import wait_http_ok
from tests.test_producer import ROOT, topic  # noqa: F401 - fixture
from tests.test_producer_query import _png

pytestmark = pytest.mark.usefixtures("ingest_worker", "query_service")

LOAD_POINTS_PER_SECOND = 100_000
# Logs at a paced rate over ten metrics of its own run until terminated.
_LOAD_SCRIPT = """
import sys, time
from producer import Experiment, Workspace
run = Experiment(Workspace.from_config(), "background-load").start_logging(outputs=None)
rate = int(sys.argv[1])
names = [f"m{i}" for i in range(10)]
print(run.id, flush=True)
started, logged = time.monotonic(), 0
while True:
    due = int(rate * (time.monotonic() - started))
    while logged < due:
        run.log(names[logged % 10], float(logged))
        logged += 1
    time.sleep(0.002)
"""


async def _stored_points(db: asyncpg.Pool, run_id: str) -> int:
    return int(
        await db.fetchval("SELECT coalesce(sum(point_count), 0) FROM series WHERE run_id = $1", uuid.UUID(run_id))
    )


@pytest.fixture(scope="module")
def load(settings: Settings, topic: str) -> Iterator[str]:  # noqa: F811
    """A process logging LOAD_POINTS_PER_SECOND through the SDK for the whole module; yields its run id."""
    env = {**os.environ, **settings.as_env(), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _LOAD_SCRIPT, str(LOAD_POINTS_PER_SECOND)], env=env, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().decode().strip()
    finally:
        proc.terminate()  # SIGTERM: the run ends Canceled after a flush
        proc.wait(timeout=60)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture(scope="module")
async def load_started(load: str, db: asyncpg.Pool) -> int:
    """The load's stored points once ingest is busy with it."""
    deadline = time.monotonic() + 60
    while (stored := await _stored_points(db, load)) < LOAD_POINTS_PER_SECOND // 2:
        assert time.monotonic() < deadline, f"the background load stored only {stored} points in 60 s"
        await asyncio.sleep(0.2)
    return stored


@pytest.fixture
def workspace(settings: Settings, load_started: int) -> Workspace:
    return Workspace.from_settings(settings)


def _experiment(workspace: Workspace, name: str) -> Experiment:
    return Experiment(workspace, f"{name}-{uuid.uuid4().hex[:6]}")


def test_a_run_is_readable_as_soon_as_start_logging_returns(workspace: Workspace) -> None:
    for _ in range(5):
        experiment = _experiment(workspace, "started")
        run = experiment.start_logging(display_name="fresh", outputs=None)
        assert run.get_status() == "Running"  # was RunNotFoundError for ~0.2 s
        details = run.get_details()
        assert (details["id"], details["display_name"], details["experiment"]) == (run.id, "fresh", experiment.name)
        assert [r.id for r in experiment.get_runs()] == [run.id]
        # Another object for the same run in this process reads the same.
        assert Run(experiment, run.id).get_status() == "Running"
        run.complete()


def test_every_kind_of_metric_is_read_back_whole(workspace: Workspace, tmp_path: Path) -> None:
    image = tmp_path / "roc.png"
    image.write_bytes(_png())
    run = _experiment(workspace, "metrics").start_logging(outputs=None)
    for i in range(20_000):
        run.log("loss", 1.0 / (i + 1))
    run.log("epochs", 3)
    run.log("phase", "train")
    run.log_list("fib", [0, 1, 1, 2, 3])
    run.log_row("curve", x=1, y=0.5)
    run.log_row("curve", x=2, y=0.25)
    run.log_table("sine", {"angle": [0.0, 1.0], "sin": [0.0, math.sin(1.0)]})
    run.log_image("roc", path=image)
    metrics = run.get_metrics()
    assert metrics["loss"] == [1.0 / (i + 1) for i in range(20_000)]
    assert (metrics["epochs"], metrics["phase"], metrics["fib"]) == (3, "train", [0, 1, 1, 2, 3])
    assert metrics["curve"] == {"x": [1, 2], "y": [0.5, 0.25]}
    assert metrics["sine"] == {"angle": [0.0, 1.0], "sin": [0.0, math.sin(1.0)]}
    assert metrics["roc"] == "images/roc.png" and "images/roc.png" in run.get_file_names()
    run.log("loss", 0.0)
    assert run.get_metrics("loss")["loss"][-1] == 0.0 and len(run.get_metrics("loss")["loss"]) == 20_001
    run.complete()


def test_tags_and_properties_are_read_back_from_the_service(workspace: Workspace) -> None:
    experiment = _experiment(workspace, "tags")
    run = experiment.start_logging(outputs=None)
    run.tag("lr", "0.1")
    run.set_tags({"flag": None})
    run.add_properties({"owner": "ml"})
    # The service's record (get_details) and an object without this one's local copy (attached).
    details = run.get_details()
    assert details["tags"] == {"lr": "0.1", "flag": None} and details["properties"] == {"owner": "ml"}
    attached = Run(experiment, run.id)
    assert attached.get_tags() == {"lr": "0.1", "flag": None}
    assert attached.get_properties() == {"owner": "ml"}
    attached.tag("by", "attached")  # its own session, then read through the first object
    assert run.get_details()["tags"] == {"lr": "0.1", "flag": None, "by": "attached"}
    run.complete()


def test_files_are_listed_and_downloaded_right_after_upload(workspace: Workspace, tmp_path: Path) -> None:
    run = _experiment(workspace, "files").start_logging(outputs=None)
    run.upload_file("notes/a.txt", io.BytesIO(b"alpha"))
    assert run.get_file_names() == ["notes/a.txt"]
    assert run.download_file("notes/a.txt", tmp_path).read_bytes() == b"alpha"
    run.complete()


@pytest.mark.parametrize("end", ["complete", "fail", "cancel"])
def test_the_end_of_a_run_is_read_back_with_all_its_data(workspace: Workspace, end: str) -> None:
    expected = {"complete": "Completed", "fail": "Failed", "cancel": "Canceled"}[end]
    for attempt in range(3):
        run = _experiment(workspace, end).start_logging(outputs=None)
        values = [float(i + attempt) for i in range(5_000)]
        for value in values:
            run.log("x", value)
        run.log("accuracy", 0.9)
        if end == "fail":
            run.fail(RuntimeError("diverged"))
        else:
            getattr(run, end)()
        assert run.get_status() == expected  # was Running for up to 3 s
        assert run.get_metrics() == {"x": values, "accuracy": 0.9}  # was {} or some metrics but not all
        details = run.wait_for_completion(raise_on_error=False, timeout_seconds=5, poll_interval_seconds=5)
        assert details["status"] == expected and details["ended_at"]
        if end == "fail":
            assert details["error"]["message"] == "diverged"


def test_children_are_listed_right_after_child_run(workspace: Workspace) -> None:
    experiment = _experiment(workspace, "family")
    parent = experiment.start_logging(outputs=None)
    with parent.child_run("first") as first:
        first.log("loss", 0.5)
        grandchild = first.child_run("grandchild")
        grandchild.log("loss", 0.25)
        grandchild.complete()
    assert [c.id for c in parent.get_children()] == [first.id]  # was []
    assert {c.id for c in parent.get_children(recursive=True)} == {first.id, grandchild.id}
    second = parent.child_run("second")
    assert [c.display_name for c in parent.get_children()] == ["first", "second"]
    everything = parent.get_metrics(recursive=True)
    assert everything == {parent.id: {}, first.id: {"loss": 0.5}, grandchild.id: {"loss": 0.25}, second.id: {}}
    assert [r.id for r in experiment.get_runs()] == [parent.id]  # top-level runs, as in v1
    assert {r.id for r in experiment.get_runs(include_children=True)} == {parent.id, first.id, grandchild.id, second.id}
    second.complete()
    parent.complete()


def test_a_submitted_run_is_readable_at_once(workspace: Workspace, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text("from producer import Run\nRun.get_context().log('arg', 1.5)\n")
    run = _experiment(workspace, "submitted").submit(ScriptRunConfig(source, "train.py"))
    assert run.get_status() in ("Running", "Completed")
    details = run.wait_for_completion(timeout_seconds=120, poll_interval_seconds=0.1)
    assert details["status"] == "Completed"
    assert run.get_metrics() == {"arg": 1.5}


_FAMILY_SCRIPT = """
import os
from producer import Run
run = Run.get_context()
for c, child in enumerate(run.create_children(count=5)):
    for step in range(2000):
        child.log("loss", float(step + c))
    child.log_row("summary", child=c)
    child.complete()
if os.fork() == 0:  # a data loader's worker, say: its own session, handed over at its exit
    run.log("from the fork", 1.0)
    raise SystemExit(0)
os.wait()
run.log("children", 5)
"""


def test_what_a_submitted_script_wrote_is_read_whole_after_wait_for_completion(
    workspace: Workspace, tmp_path: Path
) -> None:
    """v1's flow: submit, wait, read. The script is another process and its child runs sit on
    other partitions than the run's final status, so the script hands its sessions over."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "family.py").write_text(_FAMILY_SCRIPT)
    run = _experiment(workspace, "family-script").submit(ScriptRunConfig(source, "family.py"))
    assert run.wait_for_completion(timeout_seconds=120, poll_interval_seconds=0.1)["status"] == "Completed"
    children = run.get_children()
    assert len(children) == 5  # at once: no retry
    for c, child in enumerate(children):
        metrics = child.get_metrics()
        assert metrics["summary"] == {"child": c}
        assert metrics["loss"] == [float(step + c) for step in range(2000)]
    assert run.get_metrics() == {"from the fork": 1.0, "children": 5}
    assert not list((Path(workspace.home) / "runs" / run.id / "sessions").iterdir())  # adopted and removed


def test_a_listing_of_more_runs_than_one_token_holds(workspace: Workspace) -> None:
    experiment = _experiment(workspace, "many")
    count = MAX_READ_AFTER_SESSIONS + 20
    runs = [experiment.start_logging(outputs=None) for _ in range(count)]
    for i, run in enumerate(runs):
        run.log("i", i)
    for run in runs:
        run.flush()
    listed = list(experiment.get_runs())
    assert {r.id for r in listed} == {r.id for r in runs}
    for run in runs:
        run.complete()
    assert {r.get_status() for r in experiment.get_runs()} == {"Completed"}


def test_a_run_only_read_here_sends_no_token(settings: Settings, load: str, load_started: int) -> None:
    # Ingest is always behind the load's process; this process wrote nothing to that run,
    # so even a read that may not wait at all answers at once, with what is stored.
    impatient = Workspace.from_settings(settings, options=LoggingOptions(read_consistency_seconds=0))
    assert Run(Experiment(impatient, "background-load"), load).get_status() == "Running"
    assert LEDGER.sessions([load]) == []


def test_offline_runs_answer_locally(settings: Settings, tmp_path: Path) -> None:
    # What Run.get_context() gives outside a submitted script (without caching it for the session).
    run = _context_from_env({**settings.as_env(), "RUNSTREAM_HOME": str(tmp_path)})
    assert run.offline and run.get_status() == "Running"
    run.tag("k", "v")
    assert run.get_tags() == {"k": "v"}
    with pytest.raises(OfflineRunError):
        run.get_metrics()
    run.complete()
    assert run.get_status() == "Completed"


# --- the bound -------------------------------------------------------------


def _private(settings: Settings, name: str) -> Settings:
    """The session's stack with a topic, consumer group and metrics port of its own."""
    prefix = f"{settings.topic.removesuffix('.events')}.{name}-{uuid.uuid4().hex[:6]}"
    return replace(
        settings,
        topic=f"{prefix}.events",
        dlq_topic=f"{prefix}.dead-letter",
        group_id=f"{prefix}-ingest",
        ingest_metrics_port=free_port(),
    )


async def test_a_read_raises_at_the_bound_when_ingest_stops(settings: Settings, spawn: Callable[..., Any]) -> None:
    private = _private(settings, "stopped")
    worker = spawn("ingest", private)
    await wait_http_ok(f"http://127.0.0.1:{private.ingest_metrics_port}/metrics", worker)
    bound = 3.0
    workspace = Workspace.from_settings(private, options=LoggingOptions(read_consistency_seconds=bound))
    run = Experiment(workspace, "ingest-stops").start_logging(outputs=None)
    run.log("x", 1.0)
    assert run.get_metrics() == {"x": 1.0}  # the worker is up: stored and read back
    stored = run._session.sender.seq
    worker.terminate()
    assert worker.wait(timeout=30) == 0
    run.log("x", 2.0)
    started = time.monotonic()
    with pytest.raises(ReadConsistencyError) as info:
        run.get_metrics()
    waited = time.monotonic() - started
    assert isinstance(info.value, TimeoutError)
    assert bound <= waited < bound + 5.0
    [lag] = info.value.lag
    assert (lag.run_id, lag.session_id) == (run.id, run.session_id)
    assert (lag.stored_seq, lag.required_seq) == (stored, stored + 1)
    assert lag.undelivered == 0 and lag.spooled == 0
    message = str(info.value)
    assert f"ingest has stored seq {stored} of {stored + 1} (1 record behind)" in message and run.id in message
    # A worker back on the same group catches up, and the same read now answers everything.
    worker = spawn("ingest", private)
    await wait_http_ok(f"http://127.0.0.1:{private.ingest_metrics_port}/metrics", worker)
    run.complete()
    assert run.get_metrics() == {"x": [1.0, 2.0]} and run.get_status() == "Completed"
    worker.terminate()
    worker.wait(timeout=30)


async def test_a_read_never_answers_without_data_waiting_in_the_spool(settings: Settings, tmp_path: Path) -> None:
    bound = 2.0
    unreachable = Workspace(
        kafka_bootstrap=f"127.0.0.1:{free_port()}",  # nothing listens here
        query_url=settings.query_url,
        topic=settings.topic,
        home=tmp_path,
        options=LoggingOptions(spill_after_seconds=0.2, request_timeout_seconds=2.0, read_consistency_seconds=bound),
    )
    started = time.monotonic()
    run = Experiment(unreachable, "spooled-read").start_logging(outputs=None)
    assert time.monotonic() - started < 1.0  # start_logging() never waits for Kafka
    for i in range(1_000):
        run.log("x", float(i))
    run.complete(timeout_seconds=10)  # into the spool
    started = time.monotonic()
    with pytest.raises(ReadConsistencyError) as info:
        run.get_metrics()
    assert bound <= time.monotonic() - started < bound + 5.0
    [lag] = info.value.lag
    assert lag.stored_seq == 0 and lag.required_seq >= 1 and lag.spooled == lag.required_seq
    assert lag.spool == str(tmp_path / "spool" / run.id / f"{run.session_id}.jsonl")
    assert "wait in this process's spool" in str(info.value)
    # Published later (`runstream sync`), the run reads back whole.
    await ensure_topics(settings, {settings.topic: settings.topic_partitions})
    assert sync_spool(tmp_path / "spool", workspace=Workspace.from_settings(settings)).records == lag.required_seq
    assert run.get_metrics() == {"x": [float(i) for i in range(1_000)]}
    assert run.get_status() == "Completed"


def test_writes_that_never_reached_kafka_fail_every_read_at_once(settings: Settings, tmp_path: Path) -> None:
    """No spool, Kafka away past complete()'s timeout: the data is gone, and no read pretends otherwise."""
    unreachable = Workspace(
        kafka_bootstrap=f"127.0.0.1:{free_port()}",  # nothing listens here
        query_url=settings.query_url,
        topic=settings.topic,
        home=tmp_path,
        options=LoggingOptions(spool=False, request_timeout_seconds=1.0),
    )
    run = Experiment(unreachable, "lost").start_logging(outputs=None)
    for i in range(100):
        run.log("x", float(i))
    with pytest.raises(FlushTimeoutError):
        run.complete(timeout_seconds=1)
    started = time.monotonic()
    with pytest.raises(ReadConsistencyError) as info:
        run.get_status()
    assert time.monotonic() - started < 1.0  # waiting cannot bring it back
    [lag] = info.value.lag
    assert lag.undelivered >= 100 and lag.stored_seq is None
    assert "were not delivered to Kafka" in str(info.value)


async def test_the_portal_url_shows_a_starting_run_that_fills_in_live(
    settings: Settings, spawn: Callable[..., Any], browser: Browser
) -> None:
    """The URL printed right after start_logging() is opened by a browser, with no token: never a 404."""
    private = _private(settings, "portal")
    await ensure_topics(private, {private.topic: private.topic_partitions})
    run = Experiment(Workspace.from_settings(private), "portal").start_logging(display_name="portal", outputs=None)
    run.log("loss", 0.5)
    await asyncio.to_thread(run.flush)  # in Kafka; no ingest worker reads this topic yet
    page = await browser.new_page()
    errors: list[Any] = []
    page.on("pageerror", lambda exc: errors.append(exc))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    response = await page.goto(run.get_portal_url())
    assert response is not None and response.status == 200
    await expect(page.locator("#run-starting")).to_contain_text("Starting")
    worker = spawn("ingest", private)
    await expect(page.locator("#run-status")).to_have_text("Running", timeout=60_000)
    await expect(page.locator('section[data-metric="loss"]')).to_be_visible()
    await expect(page.locator("h1")).to_have_text("Run portal")
    await asyncio.to_thread(run.complete)
    await expect(page.locator("#run-status")).to_have_text("Completed", timeout=30_000)
    assert errors == []
    await page.close()
    worker.terminate()
    worker.wait(timeout=30)


async def test_the_background_load_was_real(load: str, load_started: int, db: asyncpg.Pool) -> None:
    """Last in the module: ingest went on storing the load's points while the tests above ran (> 5 s)."""
    assert await _stored_points(db, load) - load_started >= LOAD_POINTS_PER_SECOND
