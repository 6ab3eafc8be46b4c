"""``runstream sync`` as a real CLI process: a killed training process's spool reaches the query API once.

The training process logs while Kafka is unreachable, so everything goes to
its spool, and is killed with SIGKILL (no flush, no exit hooks). The
``runstream`` console script then publishes the spool; the points are read
back through the query service. Publishing a copy of the same spool again
must not duplicate anything: ingest drops batches by session and seq.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from ops.stack import free_port
from producer import Experiment, Run, RunNotFoundError, Workspace
from runstream.config import Settings
from tests.support import eventually
from tests.test_producer import ROOT, topic  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("topic", "ingest_worker", "query_service")

POINTS = 20_000
CLI = Path(sys.executable).with_name("runstream")


def _train_until_killed(settings: Settings, home: Path) -> str:
    """A training process that spools everything, killed once it is on disk; returns the run id."""
    script = (
        "import time\n"
        "from producer import Experiment, LoggingOptions, Workspace\n"
        f"ws = Workspace(kafka_bootstrap='127.0.0.1:{free_port()}', query_url={settings.query_url!r},"
        f" topic={settings.topic!r}, home={str(home)!r},"
        " options=LoggingOptions(spill_after_seconds=0.2, request_timeout_seconds=2))\n"
        "run = Experiment(ws, 'cli-sync').start_logging(outputs=None)\n"
        f"for i in range({POINTS}):\n"
        "    run.log('loss', i / 4)\n"
        "run.flush(60)\n"  # on disk: Kafka is unreachable
        "print(run.id, flush=True)\n"
        "time.sleep(3600)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        proc.kill()
        assert proc.wait(timeout=30) == -9
    return run_id


def _sync(settings: Settings, path: Path) -> str:
    env = {**os.environ, **settings.as_env(), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([str(CLI), "sync", str(path)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_runstream_sync_delivers_a_killed_process_spool_exactly_once(settings: Settings, tmp_path: Path) -> None:
    home = tmp_path / "trainer"
    run_id = _train_until_killed(settings, home)
    spool = home / "spool"
    (session_file,) = spool.rglob("*.jsonl")
    copy = tmp_path / "copy" / run_id / session_file.name
    copy.parent.mkdir(parents=True)
    shutil.copy(session_file, copy)

    out = _sync(settings, spool)
    assert "from 1 spool file(s)" in out and not session_file.exists()
    assert "published 0 record(s)" in _sync(settings, spool)  # nothing left to publish

    ws = Workspace.from_settings(settings)
    run = Run(Experiment(ws, "cli-sync"), run_id)
    expected = [i / 4 for i in range(POINTS)]

    async def metrics() -> dict[str, Any]:
        try:
            return run.get_metrics()
        except RunNotFoundError:
            return {}  # not ingested yet

    await eventually(
        metrics, lambda m: m.get("loss") == expected, timeout_seconds=120, what="every point via the query API"
    )

    # The same records published a second time are dropped by session and seq. A
    # later session's point on the same run (same key, same partition) shows when
    # ingest has read past the copies.
    assert "from 1 spool file(s)" in _sync(settings, tmp_path / "copy")
    later = Run(Experiment(ws, "cli-sync"), run_id)
    later.log("after", 1.0)
    later.flush(60)
    await eventually(metrics, lambda m: m.get("after") == 1.0, timeout_seconds=120, what="the later point")
    assert run.get_metrics("loss") == {"loss": expected}
    assert run.get_status() == "Running"  # the killed process never ended it; ingest's liveness will
    later.complete()  # else it heartbeats until the interpreter exits, when the session's broker is gone


def _offline_run(home: Path) -> str:
    """A completed offline run (``Run.get_context()`` outside any run) spooled under ``home``; returns its id."""
    script = "from producer import Run\nrun = Run.get_context()\nrun.log('loss', 0.5)\nrun.complete()\nprint(run.id)\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    env.update({"PYTHONPATH": str(ROOT), "RUNSTREAM_HOME": str(home)})
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=home, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


async def test_runstream_sync_skips_a_listed_spool_file_that_is_gone(settings: Settings, tmp_path: Path) -> None:
    """A live process removes its spool file once it has replayed it; if that happens just
    after sync lists the file, sync's stat (or open) finds nothing. The file was handled by
    its owner: sync skips it and publishes the rest. A dangling symlink is such a file at
    any instant - listed, yet not there - so the race needs no timing here."""
    home = tmp_path / "offline"
    home.mkdir()
    run_id = _offline_run(home)
    gone = home / "spool" / str(uuid.uuid4()) / f"{uuid.uuid4()}.jsonl"
    gone.parent.mkdir()
    gone.symlink_to(tmp_path / "removed-by-its-process.jsonl")

    assert "from 1 spool file(s)" in _sync(settings, home / "spool")
    run = Run(Experiment(Workspace.from_settings(settings), "offline"), run_id)

    async def delivered() -> tuple[str, dict[str, Any]]:
        try:
            return run.get_status(), run.get_metrics()
        except RunNotFoundError:
            return "", {}  # not ingested yet

    await eventually(delivered, lambda got: got == ("Completed", {"loss": 0.5}), what="the offline run")
