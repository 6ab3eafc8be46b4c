"""Offline runs as Azure ML v1 has them, and what runstream adds: they spool and ``runstream sync`` publishes them.

``Run.get_context()`` outside a submitted run is an ``_OfflineRun`` whose id
starts ``OfflineRun_``; ``allow_offline=False`` raises as v1 does; inside a
submitted script it is the run. What an offline run logged, uploaded and the
child runs it made are published by sync under the UUID of its id, and
``Run(experiment, "OfflineRun_<uuid>")`` reads them back.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from producer import Experiment, Run, RunEnvironmentError, ScriptRunConfig, Workspace, sync_spool
from producer._offline import _OfflineRun
from runstream.config import Settings
from tests.azure_support import settled
from tests.test_producer import ROOT, topic, workspace  # noqa: F401 - fixtures

pytestmark = pytest.mark.usefixtures("ingest_worker", "query_service")

_OFFLINE = """\
import io
from producer import Run, RunEnvironmentError
try:
    Run.get_context(allow_offline=False)
except RunEnvironmentError as exc:
    print("REFUSED", str(exc).split(",")[0])
run = Run.get_context()
print("TYPE", type(run).__name__)
run.log("acc", 0.75)
run.tag("phase", 2)
run.upload_file("notes.txt", io.BytesIO(b"offline notes"))
child = run.child_run("part")
child.log("acc", 0.5)
child.complete()
print("CHILD", child.id)
run.complete()
run.tag("after", "end")
print("RUN", run.id)
"""


def _lines(output: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in output.splitlines() if " " in line)


async def test_an_offline_run_is_v1s_and_sync_publishes_it(settings: Settings, tmp_path: Path, topic: str) -> None:  # noqa: F811
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    env.update({"PYTHONPATH": str(ROOT), "RUNSTREAM_HOME": str(tmp_path)})
    done = subprocess.run(
        [sys.executable, "-c", _OFFLINE], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    out = _lines(done.stdout)
    assert out["REFUSED"] == "Could not load a submitted run"
    assert out["TYPE"] == "_OfflineRun"
    run_id, child_id = out["RUN"], out["CHILD"]
    assert run_id.startswith("OfflineRun_") and child_id.startswith("OfflineRun_")
    stored = run_id.removeprefix("OfflineRun_")
    assert str(uuid.UUID(stored)) == stored and (tmp_path / "spool" / stored).is_dir()

    result = sync_spool(tmp_path / "spool", workspace=Workspace.from_settings(settings))
    assert result.files == [f"{stored}/notes.txt"]
    experiment = Experiment(Workspace.from_settings(settings), "offline")
    run = Run(experiment, run_id)  # the v1 id attaches to the published run
    assert run.id == stored
    await settled(run.get_status, lambda status: status == "Completed", "the synced offline run")
    assert run.get_metrics() == {"acc": 0.75}
    assert run.get_tags() == {"phase": "2", "after": "end"}
    assert run.get_file_names() == ["notes.txt"]
    children = run.get_children()
    assert [c.id for c in children] == [child_id.removeprefix("OfflineRun_")]
    assert children[0].get_metrics() == {"acc": 0.5} and children[0].parent is not None
    assert children[0].parent.id == stored


def test_offline_run_object(tmp_path: Path, workspace: Workspace) -> None:  # noqa: F811
    run = _OfflineRun(Experiment(workspace, "offline"), spool_dir=tmp_path)
    assert run.id.startswith("OfflineRun_") and run.offline
    assert isinstance(run, Run)
    with pytest.raises(ValueError, match="not a UUID"):
        Run(Experiment(workspace, "x"), "OfflineRun_nope")


async def test_allow_offline_false_inside_a_submitted_run(workspace: Workspace, tmp_path: Path) -> None:  # noqa: F811
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(
        "from producer import Run\nrun = Run.get_context(allow_offline=False)\nrun.log('online', run.offline)\n"
    )
    run = Experiment(workspace, "v1-context").submit(ScriptRunConfig(source, "train.py"))
    details = await settled(
        lambda: run.wait_for_completion(timeout_seconds=120), lambda d: d["status"] == "Completed", "the script's run"
    )
    assert details["runId"] == run.id and run.get_metrics() == {"online": False}


def test_allow_offline_false_outside_a_run_raises(tmp_path: Path) -> None:
    script = (
        "from producer import Run, RunEnvironmentError\n"
        "try:\n    Run.get_context(allow_offline=False)\nexcept RunEnvironmentError as exc:\n"
        "    assert isinstance(exc, RuntimeError); print('raised')\n"
        "else:\n    print('returned')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    env.update({"PYTHONPATH": str(ROOT), "RUNSTREAM_HOME": str(tmp_path)})
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "raised", done.stderr
    assert not (tmp_path / "spool").exists()  # refused before any offline run was made
    assert issubclass(RunEnvironmentError, RuntimeError)
