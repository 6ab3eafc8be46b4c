"""Microsoft's Azure ML v1 samples, with only their imports changed, against the real stack (issue 12, section 2).

``examples/azureml_v1/`` holds each sample's flow as scripts written against
``azureml.core`` (train-on-local, the scikit-learn iris sample, the Keras
MNIST callback, the logging API and manage-runs notebooks). Here each one
runs with ``from azureml.core... import X`` turned into ``from producer
import X`` (tests/test_azure_compat.py runs them unchanged), and what it
logged is read back through the query service.
"""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from pathlib import Path
from typing import Any

import pytest

from producer import Environment, Experiment, MetricValueError, Run, ScriptRunConfig, Workspace
from runstream.config import Settings
from tests.azure_support import PYTHON, ROOT, marked, run_script, sample, settled
from tests.test_producer import topic, workspace  # noqa: F401 - fixtures

pytestmark = pytest.mark.usefixtures("ingest_worker", "query_service")


def _attached(settings: Settings, experiment: str, run_id: str) -> Run:
    return Run(Experiment(Workspace.from_settings(settings), experiment), run_id)


def test_train_on_local(settings: Settings, tmp_path: Path, topic: str) -> None:  # noqa: F811
    folder = sample("train_on_local", tmp_path, rewrite=True)
    out = run_script(PYTHON, folder / "notebook.py", settings, extra_path=str(ROOT)).stdout
    for mark in ("USER_MANAGED", "SYSTEM_MANAGED"):
        run = _attached(settings, "train-on-local", marked(out, mark))
        metrics = run.get_metrics()
        assert len(metrics["alpha"]) == len(metrics["mse"]) == 20 and metrics["alpha"][:2] == [0.0, 0.05]
        names = run.get_file_names()
        assert {"outputs/ridge_0.40.pkl", "logs/driver.log", "snapshot/train.py", "snapshot/mylib.py"} <= set(names)
        log = run.get_details_with_logs()["logFiles"]["logs/driver.log"]
        assert "alpha is 0.95" in log and "EXAMPLE_ENV_VAR is EXAMPLE_VALUE" in log
    assert "When alpha is 0.40, we have min MSE 3295.71." in out  # the sample's ridge_0.40.pkl
    assert "register_model: register_model('best_ridge_model'): runstream has no model registry" in out
    assert "installs nothing" in run.get_details_with_logs()["logFiles"]["logs/driver.log"]  # system-managed
    assert run.get_details()["runDefinition"]["environment"]["python"]["condaDependencies"]["dependencies"] == [
        "scikit-learn"
    ]


def test_sklearn_iris(settings: Settings, tmp_path: Path, topic: str) -> None:  # noqa: F811
    folder = sample("sklearn_iris", tmp_path, rewrite=True)
    out = run_script(PYTHON, folder / "notebook.py", settings, extra_path=str(ROOT)).stdout
    run = _attached(settings, "train_iris", marked(out, "IRIS"))
    metrics = run.get_metrics()
    assert metrics["Kernel type"] == "linear" and metrics["Penalty"] == 1.0 and metrics["Accuracy"] > 0.9
    matrix = metrics["Confusion matrix"]
    assert sum(sum(column) for column in matrix.values()) == 38  # iris's test split
    assert "outputs/model.joblib" in run.get_file_names()
    assert run.get_portal_url() in out  # RunDetails(run).show() outside a notebook: the link
    assert run.get_details()["runDefinition"]["arguments"] == ["--kernel", "linear", "--penalty", "1.0"]


def test_keras_mnist_callback(settings: Settings, tmp_path: Path, topic: str) -> None:  # noqa: F811
    folder = sample("keras_mnist", tmp_path, rewrite=True)
    out = run_script(PYTHON, folder / "notebook.py", settings, extra_path=str(ROOT)).stdout
    run = _attached(settings, "keras-mnist", marked(out, "KERAS"))
    metrics = run.get_metrics()
    assert len(metrics["Loss"]) == len(metrics["Accuracy"]) == 8  # one per epoch, from numpy float32 logs
    assert metrics["Final test accuracy"] == metrics["Accuracy"][-1] > 0.9
    assert math.isclose(metrics["Final test loss"], metrics["Loss"][-1], rel_tol=1e-6)
    image = metrics["Accuracy vs Loss"]
    assert image.startswith("images/") and image.endswith(".png")
    assert {image, "outputs/model/weights.npy"} <= set(run.get_file_names())


def test_logging_api(settings: Settings, tmp_path: Path, topic: str) -> None:  # noqa: F811
    folder = sample("logging_api", tmp_path, rewrite=True)
    notebook = folder / "notebook.py"
    # The notebook reads the run right after complete(): read-your-writes makes that whole.
    out = run_script(PYTHON, notebook, settings, extra_path=str(ROOT)).stdout
    run = _attached(settings, "logging-api-test", marked(out, "RUN_ID"))
    metrics = run.get_metrics()
    # What the notebook itself printed right after complete() was already whole (once it lost some).
    printed = next(line for line in out.splitlines() if line.startswith("{") and "'Fibonacci': " in line)
    assert all(repr(name) in printed for name in metrics), (sorted(metrics), printed[:300])
    assert metrics["Category"] == "Red" and metrics["scale factor"] == 2 and metrics["Magic Number"] == 84
    assert metrics["Fibonacci"] == [2 * v for v in (0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89)]
    assert len(metrics["Sigmoid"]) == 20 and math.isclose(metrics["Sigmoid"][10], 0.5)
    assert len(metrics["Cosine Wave"]["angle"]) == 20 and set(metrics["Cosine Wave"]) == {"angle", "cos"}
    assert len(metrics["Sine Wave"]["sine"]) == 20
    assert metrics["Hyperbolic Tangent"] in run.get_file_names()
    assert "outputs/myfile.txt" in run.get_file_names()
    assert (folder / "files" / "myfile.txt").read_text() == "This is an output file that will be uploaded.\n"
    assert run.get_tags() == {"My Favorite Run": None, "Competition Rank": "1"}
    assert "{'My Favorite Run': None, 'Competition Rank': '1'}" in out
    assert "<th>Experiment</th>" in out and "<th>Report Page</th>" in out  # the notebook's views of run and experiment


async def test_manage_runs(workspace: Workspace, tmp_path: Path) -> None:  # noqa: F811
    """The manage-runs notebook's calls, in order, each read waited for (they follow writes at once)."""
    folder = sample("manage_runs", tmp_path, rewrite=True)
    exp = Experiment(workspace=workspace, name=f"explore-runs-{uuid.uuid4().hex[:6]}")

    notebook_run = exp.start_logging()
    notebook_run.log(name="message", value="Hello from run!")
    await settled(notebook_run.get_status, lambda s: s == "Running", "the started run")
    assert notebook_run.get_details()["runId"] == notebook_run.id
    notebook_run.complete()
    await settled(notebook_run.get_status, lambda s: s == "Completed", "the completed run")
    with exp.start_logging() as notebook_run:
        notebook_run.log(name="message", value="Hello from run!")
    await settled(notebook_run.get_status, lambda s: s == "Completed", "the with-block's run")

    (folder / ".amlignore").write_text(
        "# Exclude the outputs directory automatically created by our earlier runs.\n/outputs\n"
    )
    run_config = ScriptRunConfig(source_directory=folder, script="hello.py")
    local_script_run = exp.submit(run_config)
    live = await settled(local_script_run.get_details_with_logs, lambda d: "logs/driver.log" in d["logFiles"], "logs")
    assert live["runDefinition"]["script"] == "hello.py"
    await asyncio.to_thread(local_script_run.wait_for_completion, show_output=True)
    assert local_script_run.get_status() == "Completed"

    local_script_run.add_properties({"author": "azureml-user"})
    with pytest.raises(MetricValueError, match="property is already 'azureml-user'"):
        local_script_run.add_properties({"author": "different-user"})
    local_script_run.tag("quality", "great run")
    local_script_run.tag("quality", "fantastic run")
    local_script_run.tag("worth another look")
    assert local_script_run.get_tags() == {"quality": "fantastic run", "worth another look": None}

    def found(**filters: Any) -> list[str]:
        return [r.id for r in exp.get_runs(**filters)]

    await settled(
        lambda: found(properties={"author": "azureml-user"}, tags={"quality": "fantastic run"}),
        lambda ids: ids == [local_script_run.id],
        "the run found by property and tag",
    )
    assert found(properties={"author": "azureml-user"}, tags="worth another look") == [local_script_run.id]

    with_children = exp.submit(ScriptRunConfig(source_directory=folder, script="hello_with_children.py"))
    await asyncio.to_thread(with_children.wait_for_completion, show_output=True)
    children = await settled(with_children.get_children, lambda c: len(c) == 5, "the five children")
    await settled(lambda: [c.get_status() for c in children], lambda s: s == ["Completed"] * 5, "children ended")
    assert [c.get_metrics() for c in children] == [{"Hello from child run": c} for c in range(5)]
    assert [c.get_tags() for c in children] == [{"azureml.batch_child_number": str(c)} for c in range(5)]

    with exp.start_logging() as parent_run:
        for c, _ in enumerate(range(5)):
            with parent_run.child_run() as child:
                child.log(name="Hello from child run", value=c)
    await settled(parent_run.get_children, lambda c: len(c) == 5, "the five child_run()s")

    run_config = ScriptRunConfig(source_directory=folder, script="hello_with_delay.py")
    local_script_run = exp.submit(run_config)
    local_script_run.cancel()
    await settled(local_script_run.get_status, lambda s: s == "Canceled", "the canceled run")
    local_script_run = exp.submit(run_config)
    local_script_run.fail()
    await settled(local_script_run.get_status, lambda s: s == "Failed", "the failed run")

    zipped = local_script_run.restore_snapshot(path=tmp_path / "snapshots")
    assert Path(zipped).name == f"{local_script_run.get_snapshot_id()}.zip"
    import zipfile

    with zipfile.ZipFile(zipped) as archive:
        names = set(archive.namelist())
    assert {"hello.py", "hello_with_children.py", "hello_with_delay.py", ".amlignore"} <= names
    assert json.dumps(sorted(names))  # a plain list of the submitted files
    assert Environment("default-environment").name == "default-environment"
