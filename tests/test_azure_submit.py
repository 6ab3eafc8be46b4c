"""Submitting scripts the Azure ML v1 way, against the real stack (issue 12, section 2).

``ScriptRunConfig(source_directory=, script=, arguments=, environment=,
compute_target=, run_config=)`` and ``src.run_config``; what runs locally and
what is refused; the environment's variables and interpreter in the script;
snapshots (``.amlignore``/``.gitignore`` semantics, the script running in
the copy, one run's outputs never reaching the next, ``restore_snapshot``);
``get_details`` of a submitted run (``runDefinition``, ``logFiles``) and
``get_details_with_logs``; ``submit(config, tags=)``; ``run.type``.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import uuid
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from producer import (
    CondaDependencies,
    DockerConfiguration,
    Environment,
    Experiment,
    Run,
    RunConfiguration,
    ScriptRunConfig,
    SnapshotError,
    UnsupportedError,
    UsageError,
    Workspace,
)
from producer._snapshot import DEFAULT_PATTERNS, MAX_FILES
from runstream.config import Settings
from tests.azure_support import settled
from tests.test_producer import topic, workspace  # noqa: F401 - fixtures

pytestmark = pytest.mark.usefixtures("ingest_worker", "query_service")

# Logs what the script sees as metrics, so the test reads them back through the service.
_PROBE = """\
import json, os, sys
from producer import Run
run = Run.get_context(allow_offline=False)
files = sorted(os.path.relpath(os.path.join(d, f)).replace(os.sep, "/") for d, _, fs in os.walk(".") for f in fs)
had_outputs = os.path.exists("outputs")
run.log("files", json.dumps(files))
run.log("had_outputs", str(had_outputs))
run.log("cwd", os.getcwd())
run.log("argv", json.dumps(sys.argv[1:]))
run.log("python", sys.executable)
for name in ("MY_FLAG", "RUNTIME_FLAG", "EXAMPLE_ENV_VAR", "AZUREML_RUN_ID", "AZUREML_ARM_PROJECT_NAME", "WRAPPED"):
    run.log("env " + name, os.environ.get(name, "-"))
os.makedirs("outputs", exist_ok=True)
open("outputs/made.txt", "w").write(run.id)
print("probe done", run.id)
"""


def _source(tmp_path: Path, files: dict[str, str] | None = None) -> Path:
    source = tmp_path / f"src-{uuid.uuid4().hex[:6]}"
    source.mkdir()
    (source / "train.py").write_text(_PROBE)
    for name, text in (files or {}).items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    return source


def _experiment(ws: Workspace, stem: str) -> Experiment:
    return Experiment(ws, f"{stem}-{uuid.uuid4().hex[:8]}")


async def _finished(run: Run) -> dict[str, Any]:
    details = await asyncio.to_thread(run.wait_for_completion, timeout_seconds=120, poll_interval_seconds=0.1)
    assert details["status"] == "Completed", details.get("error")
    return details


def test_script_run_config_has_v1s_shape(tmp_path: Path) -> None:
    source = _source(tmp_path)
    env = Environment("my-env")
    src = ScriptRunConfig(
        source_directory=source, script="train.py", arguments=["--lr", 0.1], compute_target="local", environment=env
    )
    rc = src.run_config
    assert isinstance(rc, RunConfiguration) and rc.target == "local" and rc.environment is env
    assert (src.script, src.arguments) == ("train.py", ["--lr", 0.1])
    default = ScriptRunConfig(source, "train.py")
    assert default.run_config.target == "local" and default.run_config.environment.name == "default-environment"
    assert default.run_config.environment.environment_variables == {"EXAMPLE_ENV_VAR": "EXAMPLE_VALUE"}  # v1's default
    assert default.run_config.max_run_duration_seconds == ScriptRunConfig.MAX_DURATION_SECONDS_DEFAULT
    # With a run_config, its script and arguments fill in what the config leaves out (v1).
    given = RunConfiguration(script="train.py", arguments=["--epochs", 3])
    from_rc = ScriptRunConfig(source_directory=source, run_config=given)
    assert (from_rc.script, from_rc.arguments, from_rc.run_config) == ("train.py", ["--epochs", 3], given)
    assert from_rc.argv()[1:] == ["train.py", "--epochs", "3"]


def test_what_cannot_run_here_is_refused_with_what_to_do(workspace: Workspace, tmp_path: Path) -> None:  # noqa: F811
    source = _source(tmp_path)
    with pytest.raises(UnsupportedError, match="compute_target 'cpu-cluster': runstream runs submitted scripts on"):
        ScriptRunConfig(source_directory=source, script="train.py", compute_target="cpu-cluster")

    class ComputeTarget:  # what v1's ComputeTarget(workspace=ws, name=...) is to a run config: its name
        name = "gpu-cluster"

    with pytest.raises(UnsupportedError, match="'gpu-cluster'.*compute_target='local'"):
        ScriptRunConfig(source, "train.py", compute_target=ComputeTarget())
    docker_env = Environment("docker-env")
    docker_env.docker.enabled = True
    with pytest.raises(UnsupportedError, match="docker.enabled"):
        ScriptRunConfig(source, "train.py", environment=docker_env)
    with pytest.raises(UnsupportedError, match="use_docker"):
        ScriptRunConfig(source, "train.py", docker_runtime_config=DockerConfiguration(use_docker=True))
    with pytest.raises(UnsupportedError, match="one local process"):
        ScriptRunConfig(source, "train.py", distributed_job_config=object())
    with pytest.raises(UnsupportedError, match="from_docker_image"):
        Environment.from_docker_image("e", "python:3.11")
    with pytest.raises(UsageError, match="exactly one of script and command"):
        ScriptRunConfig(source, "train.py", command=["python", "train.py"])
    # Changed after construction (src.run_config.target = ...): refused when submitted, before any run exists.
    src = ScriptRunConfig(source, "train.py")
    src.run_config.target = "aks-cluster"
    with pytest.raises(UnsupportedError, match="aks-cluster"):
        Experiment(workspace, "never-created").submit(src)


async def test_environment_variables_interpreter_and_arguments_reach_the_script(
    workspace: Workspace,  # noqa: F811
    tmp_path: Path,
) -> None:
    source = _source(tmp_path)
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text(f'#!/bin/sh\nWRAPPED=yes exec "{sys.executable}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    env = Environment("user-managed")
    env.python.user_managed_dependencies = True
    env.python.interpreter_path = str(wrapper)
    env.environment_variables = {"MY_FLAG": "on"}
    src = ScriptRunConfig(source, "train.py", arguments=["--lr", 0.5, 3], environment=env)
    src.run_config.environment_variables = {"RUNTIME_FLAG": "also"}
    experiment = _experiment(workspace, "v1-env")
    run = experiment.submit(src)
    await _finished(run)
    metrics = run.get_metrics()
    assert metrics["env MY_FLAG"] == "on" and metrics["env RUNTIME_FLAG"] == "also"
    assert metrics["env EXAMPLE_ENV_VAR"] == "-"  # replaced by the user's variables, as in v1
    assert metrics["env WRAPPED"] == "yes"  # the environment's interpreter ran it
    assert metrics["env AZUREML_RUN_ID"] == run.id and metrics["env AZUREML_ARM_PROJECT_NAME"] == experiment.name
    assert metrics["argv"] == '["--lr", "0.5", "3"]'
    assert metrics["cwd"] == str(workspace.home / "runs" / run.id / "snapshot")

    # Not user-managed: declared dependencies are recorded, the script runs with this Python, the log says so.
    system = Environment("system-managed")
    system.python.conda_dependencies = CondaDependencies.create(conda_packages=["scikit-learn"], pip_packages=["tqdm"])
    run = experiment.submit(ScriptRunConfig(source, "train.py", environment=system))
    details = await _finished(run)
    assert run.get_metrics()["python"] == sys.executable
    assert run.get_metrics()["env EXAMPLE_ENV_VAR"] == "EXAMPLE_VALUE"
    python = details["runDefinition"]["environment"]["python"]
    assert python["userManagedDependencies"] is False
    assert python["condaDependencies"]["dependencies"] == ["scikit-learn", {"pip": ["tqdm"]}]
    log = run.get_details_with_logs()["logFiles"]["logs/driver.log"]
    assert log.startswith("runstream: environment 'system-managed' declares conda/pip dependencies")
    assert "installs nothing" in log and f"probe done {run.id}" in log


async def test_specifications_from_files_are_recorded(workspace: Workspace, tmp_path: Path) -> None:  # noqa: F811
    source = _source(tmp_path)
    conda = tmp_path / "environment.yml"
    conda.write_text("name: train\ndependencies:\n  - python=3.11\n  - pip:\n    - numpy\n")
    pip = tmp_path / "requirements.txt"
    pip.write_text("numpy>=1.26  # arrays\n\nscikit-learn\n")
    experiment = _experiment(workspace, "v1-specs")
    from_conda = experiment.submit(
        ScriptRunConfig(source, "train.py", environment=Environment.from_conda_specification("c", conda))
    )
    from_pip = experiment.submit(
        ScriptRunConfig(source, "train.py", environment=Environment.from_pip_requirements("p", pip))
    )
    conda_details = await _finished(from_conda)
    pip_details = await _finished(from_pip)
    recorded = conda_details["runDefinition"]["environment"]["python"]["condaDependencies"]
    assert recorded == {"text": conda.read_text()}
    recorded = pip_details["runDefinition"]["environment"]["python"]["condaDependencies"]
    assert recorded["dependencies"] == [{"pip": ["numpy>=1.26", "scikit-learn"]}]
    # A registered environment comes back as registered, with a version.
    registered = Environment.from_pip_requirements("team-env", pip).register(workspace)
    assert registered.version == "1" and Environment.register(registered, workspace).version == "2"
    got = Environment.get(workspace, "team-env", version="1")
    assert got.python.conda_dependencies is not None and got.python.conda_dependencies.pip_packages == [
        "numpy>=1.26",
        "scikit-learn",
    ]
    assert Environment.get(workspace, "AzureML-sklearn-1.0-ubuntu20.04-py38-cpu").python.user_managed_dependencies
    with pytest.raises(UsageError, match="no registered environment 'missing'"):
        Environment.get(workspace, "missing")


async def test_snapshot_honours_amlignore_runs_in_the_copy_and_outputs_never_carry_over(
    workspace: Workspace,  # noqa: F811
    tmp_path: Path,
) -> None:
    source = _source(
        tmp_path,
        {
            ".amlignore": "data/\n*.log\n!keep.log\n/build\n",
            ".gitignore": "train.py\n",  # not read: .amlignore wins
            "data/big.bin": "x" * 1000,
            "notes.log": "ignored",
            "keep.log": "kept",
            "build/out.o": "ignored at the root",
            "pkg/build/helper.py": "kept: /build anchors at the root",
            "pkg/data/inner.csv": "ignored: data/ matches any directory named data",
            "pkg/outputs/fixture.txt": "kept: only the root outputs/ is the run's",
            "outputs/stale.txt": "left by an earlier interactive run",
        },
    )
    experiment = _experiment(workspace, "v1-snapshot")
    first = experiment.submit(ScriptRunConfig(source, "train.py"))
    await _finished(first)
    taken = [
        "./.amlignore",
        "./.gitignore",
        "./keep.log",
        "./pkg/build/helper.py",
        "./pkg/outputs/fixture.txt",
        "./train.py",
    ]
    seen = first.get_metrics()["files"]
    assert seen == '["' + '", "'.join(p.removeprefix("./") for p in taken) + '"]'
    assert first.get_metrics()["had_outputs"] == "False"
    names = first.get_file_names()
    assert sorted(n for n in names if n.startswith("snapshot/")) == sorted("snapshot/" + p[2:] for p in taken)
    assert sorted(n for n in names if n.startswith("outputs/")) == ["outputs/made.txt"]
    assert not (source / "outputs" / "made.txt").exists()  # the source directory is left as it was

    second = experiment.submit(ScriptRunConfig(source, "train.py"))
    await _finished(second)
    assert second.get_metrics()["had_outputs"] == "False"  # the first run's outputs are not the second's
    assert sorted(n for n in second.get_file_names() if n.startswith("outputs/")) == ["outputs/made.txt"]
    made = second.download_file("outputs/made.txt", tmp_path / "made.txt").read_text()
    assert made == second.id

    # Only a .gitignore: its patterns, with gitignore semantics.
    only_git = _source(tmp_path, {".gitignore": "*.tmp\ncache/\n", "a.tmp": "", "cache/x": "", "kept.txt": ""})
    run = experiment.submit(ScriptRunConfig(only_git, "train.py"))
    await _finished(run)
    assert run.get_metrics()["files"] == '[".gitignore", "kept.txt", "train.py"]'
    # Neither: v1's default patterns (.git, docs, .ipynb_checkpoints...).
    bare = _source(tmp_path, {".git/HEAD": "ref", "docs/index.md": "", "lib.py": ""})
    assert {".git", "docs"} <= set(DEFAULT_PATTERNS)
    run = experiment.submit(ScriptRunConfig(bare, "train.py"))
    await _finished(run)
    assert run.get_metrics()["files"] == '["lib.py", "train.py"]'


async def test_restore_snapshot_gives_the_copy_back_as_a_zip(
    workspace: Workspace,  # noqa: F811
    tmp_path: Path,
) -> None:
    source = _source(tmp_path, {"lib/util.py": "X = 1\n", "skip.tmp": "", ".amlignore": "*.tmp\n"})
    run = _experiment(workspace, "v1-restore").submit(ScriptRunConfig(source, "train.py"))
    await _finished(run)
    (source / "train.py").write_text("changed after submission\n")  # the snapshot is what was submitted
    snapshot_id = run.get_properties()["ContentSnapshotId"]
    assert run.get_snapshot_id() == snapshot_id
    zipped = run.restore_snapshot(path=tmp_path / "snapshots")
    assert zipped == str((tmp_path / "snapshots" / f"{snapshot_id}.zip").absolute())
    with zipfile.ZipFile(zipped) as archive:
        assert sorted(archive.namelist()) == [".amlignore", "lib/util.py", "train.py"]
        assert archive.read("train.py").decode() == _PROBE
    # Elsewhere (no local copy of the submission): rebuilt from the run's snapshot files in the service.
    (workspace.home / "runs" / run.id / "snapshot.zip").unlink()
    rebuilt = run.restore_snapshot(path=tmp_path / "elsewhere")
    with zipfile.ZipFile(rebuilt) as archive:
        assert sorted(archive.namelist()) == [".amlignore", "lib/util.py", "train.py"]
        assert archive.read("lib/util.py") == b"X = 1\n"
    logging_run = _experiment(workspace, "v1-restore").start_logging(outputs=None)
    with pytest.raises(UsageError, match="has no snapshot"):
        logging_run.restore_snapshot(path=tmp_path)
    logging_run.complete()


def test_snapshot_limits_and_the_state_directory(settings: Settings, tmp_path: Path, topic: str) -> None:  # noqa: F811
    crowded = _source(tmp_path)
    for i in range(MAX_FILES):
        (crowded / f"f{i}.txt").write_text("")
    with pytest.raises(SnapshotError, match=f"more than {MAX_FILES} files.*a .amlignore file"):
        Experiment(Workspace.from_settings(settings), "v1-limits").submit(ScriptRunConfig(crowded, "train.py"))


async def test_the_state_directory_is_never_in_the_snapshot(
    settings: Settings,
    topic: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    # The default RUNSTREAM_HOME is ./.runstream: submitting '.' must not copy runstream's own state.
    source = _source(tmp_path)
    inside = Workspace.from_settings(replace(settings, home=source / ".runstream"))
    (source / ".runstream" / "spool").mkdir(parents=True)
    (source / ".runstream" / "spool" / "x.jsonl").write_text("")
    run = Experiment(inside, "v1-home").submit(ScriptRunConfig(source, "train.py"))
    await _finished(run)
    assert run.get_metrics()["files"] == '["train.py"]'


async def test_submitted_run_details_logs_tags_and_type(workspace: Workspace, tmp_path: Path) -> None:  # noqa: F811
    source = _source(tmp_path)
    experiment = _experiment(workspace, "v1-submitted")
    run = experiment.submit(ScriptRunConfig(source, "train.py", arguments=["--x", 1]), tags={"lr": 0.1, "kind": None})
    assert run.type == "azureml.scriptrun"
    details = await _finished(run)
    assert details["runId"] == run.id and details["target"] == "local" and "endTimeUtc" in details
    definition = details["runDefinition"]
    assert (definition["script"], definition["arguments"], definition["target"]) == ("train.py", ["--x", "1"], "local")
    assert definition["environment"]["name"] == "default-environment"
    assert details["logFiles"] == {
        "logs/driver.log": f"{run.get_portal_url().replace('/runs/', '/api/runs/')}/files/logs/driver.log"
    }
    assert details["properties"]["azureml.runsource"] == "azureml.scriptrun"
    assert details["properties"]["_azureml.ComputeTargetType"] == "local"
    assert details["submittedBy"]
    assert run.get_details_with_logs()["logFiles"]["logs/driver.log"].endswith(f"probe done {run.id}\n")
    assert run.get_tags() == {"lr": "0.1", "kind": None}
    attached = Run(experiment, run.id)
    assert attached.type == "azureml.scriptrun" and attached.get_tags() == {"lr": "0.1", "kind": None}
    assert [r.id for r in experiment.get_runs(type="azureml.scriptrun")] == [run.id]
    assert [r.id for r in experiment.get_runs(properties={"_azureml.ComputeTargetType": "local"})] == [run.id]


async def test_logs_while_the_script_runs_and_v1s_other_controls(
    workspace: Workspace,  # noqa: F811
    tmp_path: Path,
) -> None:
    source = tmp_path / "waiting"
    source.mkdir()
    (source / "train.py").write_text(
        "import pathlib, time\nprint('started', flush=True)\n"
        "while not pathlib.Path('go').exists():\n    time.sleep(0.05)\nprint('went on', flush=True)\n"
    )
    experiment = _experiment(workspace, "v1-controls")
    run = experiment.submit(ScriptRunConfig(source, "train.py"))
    # While it runs: the driver log so far, from the log API (no file yet).
    live = await settled(
        run.get_details_with_logs, lambda d: "started" in d["logFiles"].get("logs/driver.log", ""), "the log so far"
    )
    assert "went on" not in live["logFiles"]["logs/driver.log"] and "endTimeUtc" not in live
    assert run._script is not None
    (run._script.plan.cwd / "go").touch()
    details = await _finished(run)
    assert run.get_details_with_logs()["logFiles"]["logs/driver.log"] == "started\nwent on\n"
    assert details["status"] == "Completed"

    # max_run_duration_seconds: v1 cancels a script that runs longer.
    sleeper = ScriptRunConfig(source, "train.py", max_run_duration_seconds=1)
    slow = experiment.submit(sleeper)
    done = await asyncio.to_thread(slow.wait_for_completion, raise_on_error=False, timeout_seconds=120)
    assert done["status"] == "Canceled"
    # fail() on a submitted run (v1's manage-runs does it): it stays Failed when the script ends.
    failed = experiment.submit(ScriptRunConfig(source, "train.py"))
    failed.fail()
    assert failed._script is not None
    (failed._script.plan.cwd / "go").touch()
    await asyncio.to_thread(failed._script.wait, 60)
    done = await asyncio.to_thread(failed.wait_for_completion, raise_on_error=False, timeout_seconds=120)
    assert done["status"] == "Failed"
    # A command line instead of a script, "python" being the environment's interpreter.
    command = experiment.submit(ScriptRunConfig(source, command=["python", "-c", "print('from a command')"]))
    await _finished(command)
    assert "from a command" in command.get_details_with_logs()["logFiles"]["logs/driver.log"]
    assert os.path.basename(command.get_details()["runDefinition"]["commandLine"][0]).startswith("python")


async def test_the_old_run_configuration_style(workspace: Workspace, tmp_path: Path) -> None:  # noqa: F811
    """v1's earlier train-on-local: a RunConfiguration edited on the fly, passed as run_config."""
    source = _source(tmp_path)
    run_config_user_managed = RunConfiguration()
    run_config_user_managed.environment.python.user_managed_dependencies = True
    run_config_user_managed.auto_prepare_environment = True  # deprecated and unused in v1 too
    src = ScriptRunConfig(source_directory=source, script="train.py", run_config=run_config_user_managed)
    run = _experiment(workspace, "v1-runconfig").submit(src)
    await _finished(run)
    assert run.get_metrics()["python"] == sys.executable
