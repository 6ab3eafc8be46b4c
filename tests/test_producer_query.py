"""The SDK's read-back and file methods on the real stack: SDK -> Kafka -> ingest -> query -> SDK."""

from __future__ import annotations

import io
import math
import os
import struct
import subprocess
import sys
import urllib.request
import uuid
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ops.stack import free_port
from producer import (
    Experiment,
    QueryServiceError,
    Run,
    RunFailedError,
    RunNotFoundError,
    ScriptRunConfig,
    Workspace,
)
from runstream.config import Settings
from tests.support import wait_http_ok
from tests.test_producer import ROOT, topic, workspace  # noqa: F401 - fixtures

pytestmark = pytest.mark.usefixtures("ingest_worker", "query_service")


def _png(width: int = 2, height: int = 1) -> bytes:
    """A valid tiny PNG, made without any imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


class Figure:
    """Stands in for a matplotlib figure: the SDK only calls ``savefig(file, format="png")``."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def savefig(self, out: io.BytesIO, format: str) -> None:  # noqa: A002 - matplotlib's name
        self.calls.append(format)
        out.write(_png(3, 3))


def test_the_azure_workflow_reads_back_exactly(workspace: Workspace, tmp_path: Path, capsys: Any) -> None:  # noqa: F811
    outputs = tmp_path / "outputs"
    (outputs / "sub").mkdir(parents=True)
    (outputs / "model.txt").write_bytes(b"weights")
    (outputs / "sub" / "log.txt").write_bytes(b"line\n")
    snapshot = tmp_path / "src"
    snapshot.mkdir()
    (snapshot / "train.py").write_text("print('hi')\n")
    image = tmp_path / "roc.png"
    image.write_bytes(_png())
    figure = Figure()

    run = Experiment(workspace, "azure-workflow").start_logging(
        display_name="sweep", outputs=outputs, snapshot_directory=snapshot
    )
    run.log("alpha", 0.03, description="ridge penalty")
    for value in (1.0, math.nan, math.inf, -math.inf, 0.5):
        run.log("mse", value)
    run.log("epochs", 3)
    run.log("name", "ridge")
    run.log_list("fib", [0, 1, 1, 2, 3, 5])
    run.log_row("curve", description="validation curve", y=0.4, x=1)
    run.log_row("curve", description="changed later: not sent", y=0.7, x=2, z=1.0)
    run.log_table("sine", {"angle": [0.0, 1.0], "sin": [0.0, math.sin(1.0)]})
    run.log_image("roc", path=image)
    run.log_image("plot", plot=figure)
    run.tag("selected", "yes")
    run.set_tags({"flag": None})
    run.add_properties({"owner": "ml"})
    run.upload_file("extra/model.pkl", image)
    run.upload_file("extra/stream.bin", io.BytesIO(b"\x00\x01binary"))
    assert run.get_portal_url() == f"{workspace.query_url}/runs/{run.id}"
    run.complete()

    details = run.wait_for_completion(show_output=True, timeout_seconds=90, poll_interval_seconds=0.1)
    assert details["status"] == "Completed"
    printed = capsys.readouterr().out
    assert run.id in printed and run.get_portal_url() in printed and "Status: Completed" in printed
    assert run.get_status() == "Completed"
    details = run.get_details()
    assert details["id"] == run.id and details["experiment"] == "azure-workflow"
    assert details["display_name"] == "sweep" and details["error"] is None
    assert details["started_at"] and details["ended_at"]
    assert details["producer"]["records_sent"] >= 1 and details["producer"]["pending"] == 0

    metrics = run.get_metrics()
    assert metrics["alpha"] == 0.03
    mse = metrics["mse"]
    assert mse[0] == 1.0 and math.isnan(mse[1]) and mse[2:] == [math.inf, -math.inf, 0.5]
    assert metrics["epochs"] == 3
    assert metrics["name"] == "ridge"
    assert metrics["fib"] == [0, 1, 1, 2, 3, 5]
    assert metrics["curve"] == {"x": [1, 2], "y": [0.4, 0.7], "z": [None, 1.0]}
    assert list(metrics["curve"]) == ["y", "x", "z"]  # the order logged, not sorted
    assert metrics["sine"] == {"angle": [0.0, 1.0], "sin": [0.0, math.sin(1.0)]}
    assert metrics["roc"] == "images/roc.png"
    assert metrics["plot"] == "images/plot.png"
    assert figure.calls == ["png"]
    assert run.get_metrics("alpha") == {"alpha": 0.03}
    assert run.get_metrics("nothing") == {}

    assert run.get_tags() == {"selected": "yes", "flag": None}
    # Descriptions reach the server as reserved properties, one per series.
    described = {"runstream.description/alpha": "ridge penalty", "runstream.description/curve": "validation curve"}
    assert details["properties"] == {"owner": "ml", **described}
    assert run.get_properties() == {"owner": "ml", **described}
    names = set(run.get_file_names())
    assert names >= {
        "outputs/model.txt",
        "outputs/sub/log.txt",
        "snapshot/train.py",
        "images/roc.png",
        "images/plot.png",
        "extra/model.pkl",
        "extra/stream.bin",
    }
    target = run.download_file("extra/stream.bin", tmp_path / "down" / "s.bin")
    assert target.read_bytes() == b"\x00\x01binary"
    into_dir = run.download_file("outputs/sub/log.txt", tmp_path)
    assert into_dir == tmp_path / "log.txt" and into_dir.read_bytes() == b"line\n"
    with urllib.request.urlopen(run.get_portal_url(), timeout=10) as page:  # noqa: S310 - the test's service
        assert page.status == 200


def test_log_metrics_reads_back_with_its_steps(workspace: Workspace) -> None:  # noqa: F811
    run = Experiment(workspace, "log-metrics").start_logging(outputs=None)
    names = [f"m{i:02d}" for i in range(20)]
    for step in range(50):
        run.log_metrics({name: step + i / 100 for i, name in enumerate(names)})
    run.log_metrics({"m00": -1.0, "m19": math.nan}, step=100)
    run.complete()
    metrics = run.get_metrics()
    assert sorted(metrics) == names
    assert metrics["m07"] == [step + 0.07 for step in range(50)]
    assert metrics["m00"][-1] == -1.0 and math.isnan(metrics["m19"][-1])
    series = run._reads.json(f"/api/runs/{run.id}/series", {"name": "m19"})
    assert series["steps"] == [*range(50), 100]


def test_a_failed_run_raises_on_wait(workspace: Workspace) -> None:  # noqa: F811
    run = Experiment(workspace, "failing-wait").start_logging(outputs=None)
    run.fail(ValueError("diverged"))
    with pytest.raises(RunFailedError, match="diverged") as info:
        run.wait_for_completion(timeout_seconds=90, poll_interval_seconds=0.1)
    assert info.value.error["type"] == "ValueError"
    details = run.wait_for_completion(raise_on_error=False, timeout_seconds=90)
    assert details["status"] == "Failed" and details["error"]["message"] == "diverged"


def test_unknown_runs_and_files(workspace: Workspace, tmp_path: Path) -> None:  # noqa: F811
    ghost = Run(Experiment(workspace, "ghost"), "00000000-0000-4000-8000-000000000000")
    with pytest.raises(RunNotFoundError) as info:
        ghost.get_status()
    assert info.value.status == 404 and "run_not_found" in str(info.value)
    with pytest.raises(TimeoutError, match="still None"):
        ghost.wait_for_completion(timeout_seconds=0.3, poll_interval_seconds=0.1)
    assert ghost.get_tags() == {}  # not ingested: only what this process set (nothing)
    with pytest.raises(RunNotFoundError, match="file_not_found"):
        ghost.download_file("nope.txt", tmp_path / "x")
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.part").exists()


def test_uploading_the_same_name_twice_is_refused(workspace: Workspace) -> None:  # noqa: F811
    run = Experiment(workspace, "dupe").start_logging(outputs=None)
    run.upload_file("a.txt", io.BytesIO(b"1"))
    with pytest.raises(QueryServiceError) as info:
        run.upload_file("a.txt", io.BytesIO(b"2"))
    assert info.value.status == 409
    run.complete()


async def test_the_token_is_sent_as_a_bearer(settings: Settings, spawn: Any, tmp_path: Path) -> None:
    secured = replace(settings, token="s3cret-" + "t" * 32, query_port=free_port())
    secured = replace(secured, query_url=f"http://127.0.0.1:{secured.query_port}")
    proc = spawn("query", secured)
    await wait_http_ok(f"{secured.query_url}/health", proc)
    with_token = Workspace.from_settings(secured)
    run = Experiment(with_token, "auth").start_logging(outputs=None)
    run.upload_file("f.txt", io.BytesIO(b"ok"))
    assert run.get_file_names() == ["f.txt"]
    without = Run(Experiment(Workspace.from_settings(replace(secured, token=None)), "auth"), run.id)
    with pytest.raises(QueryServiceError) as info:
        without.get_file_names()
    assert info.value.status == 401
    run.complete()


READ_TOKEN = "r3ad-" + "r" * 32
WRITE_TOKEN = "wr1te-" + "w" * 32


async def test_uploads_use_the_write_token_and_reads_the_read_token(
    settings: Settings, spawn: Any, tmp_path: Path
) -> None:
    port = free_port()
    secured = replace(
        settings, token=READ_TOKEN, write_token=WRITE_TOKEN, query_port=port, query_url=f"http://127.0.0.1:{port}"
    )
    proc = spawn("query", secured)
    await wait_http_ok(f"{secured.query_url}/health", proc)
    env = {k: v for k, v in secured.as_env().items() if k != "RUNSTREAM_HOME"}
    both = Workspace.from_config(env={**env, "RUNSTREAM_HOME": str(tmp_path)})
    assert (both.token, both.write_token) == (READ_TOKEN, WRITE_TOKEN)
    run = Experiment(both, "tokens").start_logging(outputs=None)
    run.upload_file("f.txt", io.BytesIO(b"ok"))  # 403 if it were sent with the read token
    assert run.get_file_names() == ["f.txt"]
    assert run.download_file("f.txt", tmp_path).read_bytes() == b"ok"
    read_only = Run(Experiment(Workspace.from_settings(replace(secured, write_token=None)), "tokens"), run.id)
    assert read_only.get_file_names() == ["f.txt"]
    with pytest.raises(QueryServiceError) as info:
        read_only.upload_file("g.txt", io.BytesIO(b"no"))
    assert info.value.status == 403
    # The write token alone also reads: the service accepts it for both.
    write_only = Run(Experiment(Workspace.from_settings(replace(secured, token=None)), "tokens"), run.id)
    assert write_only.get_file_names() == ["f.txt"]
    run.complete()


def _script(tmp_path: Path, body: str) -> Path:
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    (source / "train.py").write_text(body)
    return source


def test_submit_runs_the_script_as_the_run(workspace: Workspace, tmp_path: Path, capsys: Any) -> None:  # noqa: F811
    source = _script(
        tmp_path,
        "import os, sys\n"
        "from producer import Run\n"
        "run = Run.get_context()\n"
        "for i, arg in enumerate(sys.argv[1:]):\n"
        "    run.log('arg', float(arg))\n"
        "os.makedirs('outputs', exist_ok=True)\n"
        "open('outputs/model.txt', 'w').write('trained')\n"
        "print('training done', run.id)\n",
    )
    experiment = Experiment(workspace, "submitted-script")
    run = experiment.submit(ScriptRunConfig(source_directory=source, script="train.py", arguments=[1, "2.5"]))
    details = run.wait_for_completion(show_output=True, timeout_seconds=120, poll_interval_seconds=0.1)
    assert details["status"] == "Completed" and details["display_name"] == "train.py"
    printed = capsys.readouterr().out
    assert f"training done {run.id}" in printed and "Status: Completed" in printed
    assert run.get_metrics() == {"arg": [1.0, 2.5]}
    assert {"logs/driver.log", "outputs/model.txt"} <= set(run.get_file_names())
    log = run.download_file("logs/driver.log", tmp_path / "driver.log")
    assert f"training done {run.id}" in log.read_text()


def test_submit_a_failing_script(workspace: Workspace, tmp_path: Path) -> None:  # noqa: F811
    source = _script(tmp_path, "raise SystemExit('bad data: 3 rows')\n")
    run = Experiment(workspace, "submitted-failure").submit(ScriptRunConfig(source, "train.py"))
    with pytest.raises(RunFailedError) as info:
        run.wait_for_completion(timeout_seconds=120, poll_interval_seconds=0.1)
    error = info.value.error
    assert error["exit_code"] == 1 and "bad data: 3 rows" in error["log_tail"]
    assert "exited with code 1" in error["message"]


def test_cancel_a_submitted_script(workspace: Workspace, tmp_path: Path) -> None:  # noqa: F811
    source = _script(tmp_path, "import time\nwhile True:\n    time.sleep(0.05)\n")
    run = Experiment(workspace, "submitted-cancel").submit(ScriptRunConfig(source, "train.py"))
    run.cancel(timeout_seconds=30)
    details = run.wait_for_completion(timeout_seconds=120, poll_interval_seconds=0.1)
    assert details["status"] == "Canceled"


def test_script_run_config_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a directory"):
        ScriptRunConfig(tmp_path / "nope", "train.py")
    with pytest.raises(ValueError, match="is not a file"):
        ScriptRunConfig(tmp_path, "train.py")
    (tmp_path / "train.py").write_text("")
    with pytest.raises(TypeError, match="not one string"):
        ScriptRunConfig(tmp_path, "train.py", arguments="--lr 3")  # type: ignore[arg-type]


def test_child_runs_and_listings(workspace: Workspace) -> None:  # noqa: F811
    experiment = Experiment(workspace, f"family-{uuid.uuid4().hex[:6]}")
    parent = experiment.start_logging(outputs=None)
    parent.log("loss", 1.0)
    first = parent.child_run("first")
    first.log("loss", 0.5)
    grandchild = first.child_run("grandchild")
    grandchild.log("loss", 0.25)
    second = parent.child_run("second")
    for run in (grandchild, first, second, parent):
        run.complete()
    parent.wait_for_completion(timeout_seconds=90, poll_interval_seconds=0.1)
    for run in (first, second, grandchild):
        run.wait_for_completion(timeout_seconds=90, poll_interval_seconds=0.1)
    assert [c.id for c in parent.get_children()] == [first.id, second.id]
    assert [c.display_name for c in parent.get_children()] == ["first", "second"]
    assert {c.id for c in parent.get_children(recursive=True)} == {first.id, second.id, grandchild.id}
    assert parent.get_children()[0].parent_id == parent.id
    everything = parent.get_metrics(recursive=True)
    assert everything[parent.id] == {"loss": 1.0}
    assert everything[first.id] == {"loss": 0.5} and everything[grandchild.id] == {"loss": 0.25}
    listed = [r.id for r in experiment.get_runs(include_children=True)]
    assert listed == [second.id, grandchild.id, first.id, parent.id]  # newest first
    assert [r.id for r in experiment.get_runs()] == [parent.id]  # Azure ML v1: top-level runs by default


def test_eight_processes_log_to_one_run(workspace: Workspace) -> None:  # noqa: F811
    run = Experiment(workspace, "eight-processes").start_logging(outputs=None)
    script = (
        "import sys\n"
        "from producer import Run\n"
        "run = Run.get_context()\n"
        "k = int(sys.argv[1])\n"
        "for i in range(100_000):\n"
        "    run.log('x', k * 1_000_000.0 + i)\n"
        "run.flush(60)\n"
    )
    env = {**os.environ, **run.get_environment(), "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(k)], env=env) for k in range(8)]
    assert [p.wait(timeout=300) for p in procs] == [0] * 8
    run.complete()
    run.wait_for_completion(timeout_seconds=120, poll_interval_seconds=0.2)

    # The children flushed before complete(): their records precede the status on the partition.
    values = run.get_metrics("x")["x"]
    assert sorted(values) == [k * 1_000_000.0 + i for k in range(8) for i in range(100_000)]
